import builtins
import json
import pickle

import numpy as np
import pytest

from hiermovie.config import from_dict
from hiermovie.contextualizer import Contextualizer, ContextualizerConfig
from hiermovie.datasets.synth import write_vidsitu
from hiermovie.datasets.vidsitu import VidSitu
from hiermovie.feature_store import Provenance, VideoRecord, create_store, write_shard
from hiermovie.workflows.probe import ProbeConfig, read_predictions, run_probe
from tests.reliability import record


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Synthetic annotations and a store of random features for their clips (no decoding)."""
    root = tmp_path_factory.mktemp("probe")
    write_vidsitu(root, 30, 10, seed=3, size=32, workers=1)
    url = str(root / "f.zarr")
    create_store(url, Provenance(backbone="random", dim=12, dtype="float32"))
    rng = np.random.default_rng(0)
    clips = VidSitu(root, "train").clips + VidSitu(root, "valid").clips[:-1]  # one missing
    start = np.arange(5) * 2.0
    write_shard(url, [VideoRecord(c, rng.standard_normal((5, 1, 12)).astype(np.float32), start,
                                  start + 2, np.zeros((5, 0), np.int64)) for c in clips])
    ctx = Contextualizer(ContextualizerConfig(in_dim=12, width=16, layers=1, heads=2, ffn=32))
    ctx.save_pretrained(root / "ctx")
    return root, url


def test_probe_table_and_prediction_files(bench, tmp_path, capsys):
    root, url = bench
    cfg = from_dict(ProbeConfig, {"data": f"vidsitu:{root}", "store": url, "seeds": 2,
                                  "epochs": 3, "role_epochs": 2,
                                  "contextualizer": str(root / "ctx"), "out": str(tmp_path)})
    assert run_probe(cfg) == 0
    table = (tmp_path / "results.md").read_text()
    assert "evaluated on 9 of 10 validation clips" in table  # partial data is stated
    for row in ("None", "Random init", "Mask prediction"):
        assert row in table
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["rows"]) == {"none", "random", "pretrained"}
    assert len(res["rows"]["none"]["verb/Per_Ev_Top_1"]["runs"]) == 2
    assert (tmp_path / "results.png").exists()
    preds = read_predictions(str(tmp_path / "pred_relation_none_seed0.json"))
    assert len(preds) == 9 and len(preds[0]["pred_evrels_ev"]) == 4
    assert all(len(p) == 3 for p in preds[0]["pred_evrels_ev"])
    roles = read_predictions(str(tmp_path / "pred_roles_none_seed0.json"))
    assert set(roles[0]["vb_output"]) == {"Ev1", "Ev2", "Ev3", "Ev4", "Ev5"}


def test_score_reads_leaderboard_files(bench, tmp_path, capsys):
    root, url = bench
    valid = VidSitu(root, "valid")
    perfect = [{"ann_idx": i, "pred_vbs_ev": [[v] for v in valid.majority_verbs(c)]}
               for i, c in enumerate(valid.clips)]
    path = tmp_path / "vb.pkl"
    path.write_bytes(pickle.dumps(perfect))
    cfg = from_dict(ProbeConfig, {"data": f"vidsitu:{root}", "score": str(path),
                                  "score_task": "verb"})
    assert run_probe(cfg) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["Per_Ev_Top_1"] == 1.0


class Evil:
    # exec, not print: Ray's tqdm integration can replace builtins.print in this process
    def __reduce__(self):
        return (exec, ("import builtins; builtins.hiermovie_evil_ran = True",))


def test_score_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"ann_idx": 0, "x": Evil()}]))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.exec"):
        read_predictions(str(path))
    assert not hasattr(builtins, "hiermovie_evil_ran")
    record("Security", "prediction file (.pkl) for `probe --score` carrying pickled code", 1,
           "refused: `refusing to load builtins.exec`, never executed")


def test_fused_store_reaches_the_heads(bench, tmp_path):
    """Fusing a store that holds each event's verb (one-hot) must lift verb accuracy to ~100%,
    with and without a contextualizer: the heads see the fused channels."""
    root, url = bench
    train, valid = VidSitu(root, "train"), VidSitu(root, "valid")
    vocab = sorted({v for c in train.clips for v in train.verbs(c)} |
                   {v for c in valid.clips for v in valid.majority_verbs(c)})
    oracle = str(tmp_path / "oracle.zarr")
    create_store(oracle, Provenance(backbone="oracle", dim=len(vocab), dtype="float32"))
    start = np.arange(5) * 2.0
    recs = []
    for ds, verbs in ((train, train.verbs), (valid, valid.majority_verbs)):
        for c in ds.clips:
            onehot = np.eye(len(vocab), dtype=np.float32)[[vocab.index(v) for v in verbs(c)]]
            recs.append(VideoRecord(c, onehot[:, None], start, start + 2,
                                    np.zeros((5, 0), np.int64)))
    write_shard(oracle, recs)
    acc = {}
    for fuse in ("", oracle):
        out = tmp_path / f"fuse{bool(fuse)}"
        cfg = from_dict(ProbeConfig, {"data": f"vidsitu:{root}", "store": url, "seeds": 1,
                                      "epochs": 100, "lr": 1e-2, "tasks": ["verb"],
                                      "fuse_store": fuse,
                                      "rows": ["none", "random"], "out": str(out)})
        assert run_probe(cfg) == 0
        rows = json.loads((out / "results.json").read_text())["rows"]
        acc[bool(fuse)] = {r: rows[r]["verb/Per_Ev_Top_1"]["mean"] for r in rows}
    assert acc[True]["none"] > 0.9 and acc[True]["random"] > 0.9
    assert acc[False]["none"] < 0.6
    assert "fused" in (tmp_path / "fuseTrue" / "results.md").read_text()


def test_score_with_the_wrong_task_is_one_line(bench, tmp_path, capsys):
    from hiermovie.workflows.cli import main

    root, _ = bench
    path = tmp_path / "vb.json"
    n = len(VidSitu(root, "valid").clips)
    path.write_text(json.dumps([{"ann_idx": i, "pred_vbs_ev": [["a"]] * 5} for i in range(n)]))
    assert main(["probe", "--data", f"vidsitu:{root}", "--score", str(path),
                 "--score_task", "roles"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and "not a roles prediction file" in err
    assert len(err.splitlines()) == 1


def test_table_cells_say_when_there_is_no_spread():
    from hiermovie.workflows.tables import cell, spread

    assert cell([0.5]) == "50.0" and cell([0.4, 0.6]) == "50.0 +- 10.0"
    assert cell([0.1234, 0.1234], 1, 2) == "0.12 +- 0.00"
    assert spread(1) == "one seed (no spread measured)" and "3 seeds" in spread(3)


@pytest.mark.parametrize("kind", ["missing", "a folder that is no contextualizer"])
def test_bad_contextualizer_on_the_cli_is_one_line_exit_2(bench, tmp_path, capsys, kind):
    from hiermovie.workflows.cli import main

    root, url = bench
    path = tmp_path / "ctx"
    if kind != "missing":
        path.mkdir()
    assert main(["probe", "--data", f"vidsitu:{root}", "--store", url, "--contextualizer",
                 str(path), "--out", str(tmp_path / "o"), "--seeds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and len(err.splitlines()) == 1 and "Traceback" not in err
    record("Bad manifests, stores and configs (exit 2, one line)",
           f"`probe --contextualizer` naming {kind}", 1, f"refused: `{err.split(': ', 2)[-1]}`")
