"""Ship a trained level 1 in the model zoo (`hiermovie/zoo/`), as its own benchmark made it.

    .venv/bin/python benchmarks/zoo.py --run runs/level1-actions/actions_modist \
        --name tiny3d-modist-actions --labelled vidsitu:runs/level1-actions/det \
        --command "benchmarks/level1_share.py ... --candidates actions_modist"

Copies the run's `backbone.safetensors` to `hiermovie/zoo/NAME.safetensors` with the command
that made it added to its provenance header, loads it back as `zoo/NAME` and measures the
verb's share of its features on the labelled set's validation clips, which must equal the
run's own (the shipped file is the measured one). Regenerate the weights by running the
command: pretrain-backbone is deterministic in its seed on CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from level1_share import linear_acc1  # this folder: scripts run as files
from safetensors import safe_open
from safetensors.torch import save_file

from hiermovie.diagnostics import verb_share
from hiermovie.pipeline.backbone_config import ZOO
from hiermovie.pipeline.backbones import ORIGIN_KEY, BackboneConfig, load_backbone
from hiermovie.workflows.pretrain_backbone import labelled_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a pretrain-backbone output folder")
    ap.add_argument("--name", required=True)
    ap.add_argument("--labelled", required=True, help="vidsitu:ROOT for the verb share")
    ap.add_argument("--command", required=True, help="the command that made the run")
    a = ap.parse_args()
    src = Path(a.run) / "backbone.safetensors"
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}
    origin = json.loads(meta[ORIGIN_KEY])
    meta[ORIGIN_KEY] = json.dumps({**origin, "command": a.command})
    dst = ZOO / f"{a.name}.safetensors"
    save_file(state, str(dst), metadata=meta)
    name = f"zoo/{a.name}"
    (x,), ds, clips = labelled_features([load_backbone(BackboneConfig(name=name))], name,
                                        a.labelled, 200)
    verbs = np.array([ds.majority_verbs(c) for c in clips])
    share = verb_share(x, verbs)
    run_share = json.loads((Path(a.run) / "summary.json").read_text())["verb_share"]
    print(json.dumps({"zoo": str(dst), "bytes": dst.stat().st_size, "verb_share": share,
                      "run_verb_share": run_share, "linear_acc1": linear_acc1(x, verbs)}))
    if abs(share - run_share) > 1e-6:
        raise SystemExit(f"{name}: verb share {share} differs from the run's {run_share}")


if __name__ == "__main__":
    main()
