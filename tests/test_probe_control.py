"""The probe can detect a contextualizer that carries context (the positive control), its
subcommands list only their own fields, and pretrain-ctx never trains on validation clips."""

import json

import numpy as np
import pytest

from hiermovie.config import ConfigError, from_dict
from hiermovie.datasets.synth import write_vidsitu
from hiermovie.datasets.vidsitu import VidSitu, verb_vocab
from hiermovie.feature_store import Provenance, VideoRecord
from hiermovie.workflows.cli import main
from hiermovie.workflows.pretrain_ctx import PretrainCtxConfig, run_pretrain_ctx
from hiermovie.workflows.probe import VidSituProbeConfig
from hiermovie.workflows.probe.vidsitu import run_vidsitu
from tests.conftest import write_store


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """Each event's feature shows the *next* event's verb (Ev5's: nothing): its own verb is
    only in its neighbour, so only a contextualizer that reads context can give it."""
    root = tmp_path_factory.mktemp("control")
    write_vidsitu(root, 120, 30, seed=4, render=False)
    train, valid = VidSitu(root, "train"), VidSitu(root, "valid")
    vocab = verb_vocab(train)
    rng = np.random.default_rng(1)
    url = str(root / "f.zarr")
    start = np.arange(5) * 2.0
    recs = []
    for ds, verbs in ((train, train.verbs), (valid, valid.majority_verbs)):
        for c in ds.clips:
            ids = [vocab.index(v) if v in vocab else 0 for v in verbs(c)]
            f = 0.3 * rng.standard_normal((5, len(vocab) + 4)).astype(np.float32)
            for i in range(4):
                f[i, ids[i + 1]] += 1.0
            recs.append(VideoRecord(c, f[:, None], start, start + 2, np.zeros((5, 0), np.int64)))
    write_store(url, Provenance(backbone="shifted", dim=len(vocab) + 4, dtype="float32"), recs)
    return root, url


def test_positive_control_ranks_above_random_frozen(shifted, tmp_path):
    root, url = shifted
    shape = {"width": 32, "ffn": 64, "heads": 2, "layers": 2, "dropout": 0.0}
    assert run_pretrain_ctx(from_dict(PretrainCtxConfig, {
        "store": url, "data": f"vidsitu:{root}", "objective": "supervised", "steps": 400,
        "lr": 3e-3, "warmup": 20, "batch_size": 16, "val_every": 400, "model": shape,
        "out": str(tmp_path / "ctl"), "progress": False})) == 0
    summary = json.loads((tmp_path / "ctl" / "summary.json").read_text())
    assert summary["selection"]["excluded_validation_clips"] == 30  # the store holds them
    assert summary["train_videos"] + summary["val_videos"] == 120
    assert run_vidsitu(from_dict(VidSituProbeConfig, {
        "data": f"vidsitu:{root}", "store": url, "seeds": 2, "epochs": 30, "eval_every": 10,
        "lrs": [3e-3], "tasks": ["verb"], "head": "linear", "model": shape,
        "rows": ["backbone", "random_frozen", "positive_control"],
        "positive_control": str(tmp_path / "ctl" / "contextualizer"),
        "out": str(tmp_path / "probe"), "progress": False})) == 0
    cells = json.loads((tmp_path / "probe" / "results.json").read_text())["cells"]
    acc = {c["row"]: np.mean(c["values"]) for c in cells if c["metric"] == "verb/Per_Ev_Top_1"}
    assert acc["positive_control"] > acc["random_frozen"] + 0.1, acc
    assert acc["positive_control"] > acc["backbone"] + 0.1, acc


def test_pretrain_ctx_split_train_selects_and_excludes(shifted, tmp_path):
    root, url = shifted
    # split:valid selects only validation clips, which are always excluded: nothing left
    with pytest.raises(ConfigError, match="no videos left to train on"):
        run_pretrain_ctx(from_dict(PretrainCtxConfig, {
            "store": url, "data": f"vidsitu:{root}", "videos": "split:valid", "steps": 2,
            "out": str(tmp_path), "progress": False}))
    assert main(["pretrain-ctx", "--store", url, "--data", f"vidsitu:{root}", "--videos",
                 "split:valid", "--steps", "2", "--out", str(tmp_path / "x")]) == 2


def test_probe_subcommands_list_only_their_fields(capsys):
    fields = {}
    for sub in ("vidsitu", "lvu", "score"):
        with pytest.raises(SystemExit):
            main(["probe", sub, "--help"])
        fields[sub] = capsys.readouterr().out
    assert "--train_fraction" in fields["vidsitu"] and "--finetune.layer_decay" in fields[
        "vidsitu"]
    assert "--train_fraction" not in fields["lvu"] and "--window" in fields["lvu"]
    assert "--fuse_store" not in fields["lvu"] and "--finetune.readout" not in fields["lvu"]
    assert fields["score"].count("--") < 12 and "--store" not in fields["score"]
