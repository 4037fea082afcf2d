import builtins
import inspect
import json
import pickle

import numpy as np
import pytest
import torch

from hiermovie.config import from_dict
from hiermovie.contextualizer import Contextualizer, ContextualizerConfig
from hiermovie.datasets.synth import write_vidsitu
from hiermovie.datasets.vidsitu import VidSitu
from hiermovie.feature_store import (
    FeatureStore,
    Provenance,
    VideoRecord,
)
from hiermovie.workflows.probe import ScoreConfig, VidSituProbeConfig, read_predictions, run_score
from hiermovie.workflows.probe.vidsitu import run_vidsitu
from tests.conftest import write_store
from tests.reliability import record


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Synthetic annotations and a store of random features for their clips (no decoding)."""
    root = tmp_path_factory.mktemp("probe")
    write_vidsitu(root, 30, 10, seed=3, size=32, workers=1)
    url = str(root / "f.zarr")
    rng = np.random.default_rng(0)
    clips = VidSitu(root, "train").clips + VidSitu(root, "valid").clips[:-1]  # one missing
    start = np.arange(5) * 2.0
    write_store(url, Provenance(backbone="random", dim=12, dtype="float32"),
                [VideoRecord(c, rng.standard_normal((5, 1, 12)).astype(np.float32), start,
                                  start + 2, np.zeros((5, 0), np.int64)) for c in clips])
    ctx = Contextualizer(ContextualizerConfig(in_dim=12, width=16, layers=1, heads=2, ffn=32))
    ctx.save_pretrained(root / "ctx")
    return root, url


FAST = {"seeds": 2, "epochs": 4, "eval_every": 2, "lrs": [1e-3, 3e-3], "role_epochs": 1,
        "progress": False, "model": {"width": 16, "ffn": 32, "heads": 2, "layers": 1}}


def test_every_row_with_its_mode_tables_and_prediction_files(bench, tmp_path):
    root, url = bench
    cfg = from_dict(VidSituProbeConfig, {
        "data": f"vidsitu:{root}", "store": url, **FAST, "train_fraction": [0.5, 1.0],
        "tasks": ["verb", "relation"], "contextualizer": str(root / "ctx"),
        "positive_control": str(root / "ctx"), "out": str(tmp_path)})
    assert run_vidsitu(cfg) == 0
    table = (tmp_path / "results.md").read_text()
    assert "evaluated on 9 of 10 validation clips" in table  # partial data is stated
    assert "chosen on 6 held-out training clips" in table  # 20% of the 30 training clips
    res = json.loads((tmp_path / "results.json").read_text())
    from hiermovie.workflows.probe.rows import ROWS

    assert {r: v["mode"] for r, v in res["rows"].items()} == {r: m for r, (_, _, m)
                                                             in ROWS.items()}
    for row in ROWS:
        assert ROWS[row][0] in table
        for n, chosen in res["rows"][row]["chosen"].items():
            assert chosen["lr"] in (1e-3, 3e-3) and chosen["epochs"] in (2, 4), (row, n)
    counts = sorted({c["labels"] for c in res["cells"]})
    assert counts == [12, 24]  # half and all of the 24 pool clips
    cell = {(c["labels"], c["row"], c["metric"]): c["values"] for c in res["cells"]}
    assert len(cell[12, "backbone", "verb/Per_Ev_Top_1"]) == 2
    assert all(0 <= v <= 1 for v in cell[24, "scratch", "relation/Macro_Top_1"])
    assert (tmp_path / "label_efficiency.png").stat().st_size > 10_000
    assert "12 clips | 24 clips" in (tmp_path / "label_efficiency.md").read_text()
    preds = read_predictions(str(tmp_path / "pred_relation_backbone_n24_seed0.json"))
    assert len(preds) == 9 and len(preds[0]["pred_evrels_ev"]) == 4
    assert all(len(p) == 3 for p in preds[0]["pred_evrels_ev"])
    # the official metrics of a row's prediction file (on the clips it covers: the scorer
    # refuses a partial file) are that row's cell for that seed, and the Markdown table shows
    # the cell (a file of another row or seed, or a table of other numbers, fails here)
    from hiermovie.heads import vidsitu_metrics as vm
    from hiermovie.workflows.tables import cell as shown

    valid = VidSitu(root, "valid")
    for row in ("backbone", "scratch", "positive_control"):
        for s in (0, 1):
            verb = read_predictions(str(tmp_path / f"pred_verb_{row}_n24_seed{s}.json"))
            clips = [valid.clips[p["ann_idx"]] for p in verb]
            got = vm.verb_metrics([p["pred_vbs_ev"] for p in verb],
                                  [valid.verb_votes(c) for c in clips])
            assert got["Per_Ev_Top_1"] == pytest.approx(cell[24, row, "verb/Per_Ev_Top_1"][s])
            rel = read_predictions(str(tmp_path / f"pred_relation_{row}_n24_seed{s}.json"))
            got = vm.relation_metrics([p["pred_evrels_ev"] for p in rel],
                                      [valid.relations(c, records=3) for c in clips])
            assert got["Macro_Top_1"] == pytest.approx(cell[24, row, "relation/Macro_Top_1"][s])
        line = next(t for t in table.splitlines() if t.startswith(f"| {ROWS[row][0]} |"))
        assert shown(cell[24, row, "verb/Per_Ev_Top_1"]) in line, line


def test_roles_of_a_finetuned_row_come_from_its_chosen_run(bench, tmp_path):
    root, url = bench
    cfg = from_dict(VidSituProbeConfig, {
        "data": f"vidsitu:{root}", "store": url, **FAST, "seeds": 1, "rows": ["pretrained"],
        "contextualizer": str(root / "ctx"), "out": str(tmp_path)})
    assert run_vidsitu(cfg) == 0
    roles = read_predictions(str(tmp_path / "pred_roles_pretrained_n24_seed0.json"))
    assert len(roles) == 9 and set(roles[0]["vb_output"]) == {"Ev1", "Ev2", "Ev3", "Ev4", "Ev5"}
    cells = json.loads((tmp_path / "results.json").read_text())["cells"]
    assert {"roles/cider", "verb/Per_Ev_Top_1"} <= {c["metric"] for c in cells}


def run_score_json(root, path, task):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        run_score(from_dict(ScoreConfig, {"data": f"vidsitu:{root}", "predictions": str(path),
                                          "task": task}))
    return json.loads(buf.getvalue())


def test_every_row_trains_on_the_same_label_subsets(bench, tmp_path, monkeypatch):
    """Seed s of every row sees the same clips at a label count; counts nest."""
    from hiermovie.workflows.probe.fitting import FinetunedRow, FrozenRow

    seen = {}

    def spy(fn, name):  # reads the subset by its name, wherever the caller puts it
        def wrapped(*a, **kw):
            bound = inspect.signature(fn).bind(*a, **kw).arguments
            sub, row = bound[name], bound["self"].row
            seen.setdefault((row.name, len(sub[0]) if sub.dim() == 2 else len(sub)),
                            []).append(sub.clone())
            return fn(*a, **kw)
        return wrapped
    monkeypatch.setattr(FrozenRow, "_fit", spy(FrozenRow._fit, "subsets"))
    monkeypatch.setattr(FinetunedRow, "_fit", spy(FinetunedRow._fit, "subset"))
    root, url = bench
    cfg = from_dict(VidSituProbeConfig, {
        "data": f"vidsitu:{root}", "store": url, **FAST, "tasks": ["verb"], "lrs": [1e-3],
        "rows": ["backbone", "random_frozen", "scratch"], "train_clips": [5, 10],
        "out": str(tmp_path)})
    assert run_vidsitu(cfg) == 0
    for n in (5, 10):
        frozen = seen["backbone", n][0]
        assert frozen.shape == (2, n) and torch.equal(seen["random_frozen", n][0], frozen)
        assert torch.equal(torch.stack(seen["scratch", n]), frozen)  # one run per seed
        assert not torch.equal(frozen[0], frozen[1])  # seeds draw different subsets
    assert set(seen["backbone", 5][0][0].tolist()) < set(seen["backbone", 10][0][0].tolist())


def test_verb_only_trains_no_relation_loss_and_reports_no_relations(bench, tmp_path):
    from hiermovie.heads.models import VidSituHeads, head_loss

    heads = VidSituHeads([0, 1], 6, 8, 5, 4)
    vl, rl = heads(torch.randn(2, 3, 5, 6))
    head_loss(vl, rl, torch.zeros(2, 3, 5, dtype=torch.long),
              torch.zeros(2, 3, 4, dtype=torch.long), ["verb"]).backward()
    assert all(p.grad is None for p in heads.rel.parameters())
    assert all(p.grad.abs().sum() > 0 for p in heads.verb.parameters())
    root, url = bench
    cfg = from_dict(VidSituProbeConfig, {"data": f"vidsitu:{root}", "store": url, **FAST,
                                         "tasks": ["verb"], "rows": ["backbone"],
                                         "out": str(tmp_path)})
    assert run_vidsitu(cfg) == 0
    metrics = {c["metric"] for c in json.loads((tmp_path / "results.json").read_text())["cells"]}
    assert metrics and all(m.startswith("verb/") for m in metrics)


def test_stacked_heads_train_as_separate_runs():
    """All seeds at once equal one run per seed (no dropout: its draws are shared)."""
    from hiermovie.heads.fit import StackedMLP, fit

    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))

    def train(seeds):
        m = StackedMLP(seeds, 6, 8, 3, dropout=0.0)
        fit(m, lambda idx: torch.nn.functional.cross_entropy(
            m(x[idx]).flatten(0, 1), y[idx].flatten()) * len(seeds), 40, epochs=3, lr=1e-2,
            batch_size=8, seeds=seeds)
        return m(x[None].expand(len(seeds), -1, -1))
    both = train([0, 1])
    assert torch.allclose(both[0], train([0])[0], atol=1e-5)
    assert torch.allclose(both[1], train([1])[0], atol=1e-5)
    assert not torch.allclose(both[0], both[1])


def test_random_rows_have_the_pretrained_shape_and_frozen_rows_read_it(bench):
    from hiermovie.workflows.probe.rows import EventFeatures, build_rows

    root, _ = bench
    rows = {r.name: r for r in build_rows([], str(root / "ctx"), "", {}, 12, 1)}
    assert set(rows) == {"backbone", "random_frozen", "random_selfonly", "scratch",
                         "pretrained_frozen", "pretrained"}
    pre, rnd = rows["pretrained"].ctx, rows["random_frozen"].ctx
    assert rnd.config.to_dict() | {"_name_or_path": ""} == pre.config.to_dict() | {
        "_name_or_path": ""}
    assert [p.shape for p in rnd.parameters()] == [p.shape for p in pre.parameters()]
    assert not torch.equal(next(rnd.parameters()), next(pre.parameters()))
    raw = torch.randn(3, 5, 1, 12)
    events = EventFeatures(torch.zeros(12), torch.ones(12), 12)
    with torch.no_grad():
        ev = events(rows["pretrained_frozen"], pre, raw, None)
        assert torch.allclose(ev[..., 12:], pre(raw, torch.ones(3, 5, dtype=torch.bool)))
        # self-only: an event's features do not move when its neighbours change
        other = raw.clone()
        other[:, 1:] = torch.randn_like(other[:, 1:])
        so = rows["random_selfonly"]
        assert torch.allclose(events(so, so.ctx, raw, None)[:, 0],
                              events(so, so.ctx, other, None)[:, 0], atol=1e-6)
        fr = rows["random_frozen"]
        assert not torch.allclose(events(fr, fr.ctx, raw, None)[:, 0],
                                  events(fr, fr.ctx, other, None)[:, 0], atol=1e-3)


def test_score_reads_leaderboard_files(bench, tmp_path, capsys):
    root, url = bench
    valid = VidSitu(root, "valid")
    perfect = [{"ann_idx": i, "pred_vbs_ev": [[v] for v in valid.majority_verbs(c)]}
               for i, c in enumerate(valid.clips)]
    path = tmp_path / "vb.pkl"
    path.write_bytes(pickle.dumps(perfect))
    assert run_score_json(root, path, "verb")["Per_Ev_Top_1"] == 1.0


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
    record("Security", "prediction file (.pkl) for `probe score` carrying pickled code", 1,
           "refused: `refusing to load builtins.exec`, never executed")


def test_fused_and_joined_stores_reach_the_heads(bench, tmp_path):
    """Fusing a store that holds each event's verb (one-hot) must lift verb accuracy to ~100%,
    with and without a contextualizer: the heads see the fused channels."""
    root, url = bench
    train, valid = VidSitu(root, "train"), VidSitu(root, "valid")
    vocab = sorted({v for c in train.clips for v in train.verbs(c)} |
                   {v for c in valid.clips for v in valid.majority_verbs(c)})
    oracle = str(tmp_path / "oracle.zarr")
    start = np.arange(5) * 2.0
    recs = []
    for ds, verbs in ((train, train.verbs), (valid, valid.majority_verbs)):
        for c in ds.clips:
            onehot = np.eye(len(vocab), dtype=np.float32)[[vocab.index(v) for v in verbs(c)]]
            recs.append(VideoRecord(c, onehot[:, None], start, start + 2,
                                    np.zeros((5, 0), np.int64)))
    write_store(oracle, Provenance(backbone="oracle", dim=len(vocab), dtype="float32"), recs)
    acc = {}
    # and `--store a,b` (issue 39): the oracle's features joined to every segment's own
    for key, fuse, store in ((False, "", url), (True, oracle, url),
                             ("joined", "", f"{url},{oracle}")):
        out = tmp_path / f"fuse{key}"
        cfg = from_dict(VidSituProbeConfig, {
            "data": f"vidsitu:{root}", "store": store, "seeds": 1, "epochs": 100,
            "eval_every": 20, "lrs": [1e-2], "tasks": ["verb"], "fuse_store": fuse,
            "rows": ["backbone", "random_frozen"], "out": str(out), "progress": False,
            "model": FAST["model"]})
        assert run_vidsitu(cfg) == 0
        cells = json.loads((out / "results.json").read_text())["cells"]
        acc[key] = {c["row"]: c["values"][0] for c in cells
                    if c["metric"] == "verb/Per_Ev_Top_1"}
    assert acc[True]["backbone"] > 0.9 and acc[True]["random_frozen"] > 0.9
    assert acc["joined"]["backbone"] > 0.9
    assert acc[False]["backbone"] < 0.6
    assert "fused" in (tmp_path / "fuseTrue" / "results.md").read_text()


def test_score_with_the_wrong_task_is_one_line(bench, tmp_path, capsys):
    from hiermovie.workflows.cli import main

    root, _ = bench
    path = tmp_path / "vb.json"
    n = len(VidSitu(root, "valid").clips)
    path.write_text(json.dumps([{"ann_idx": i, "pred_vbs_ev": [["a"]] * 5} for i in range(n)]))
    assert main(["probe", "score", "--data", f"vidsitu:{root}", "--predictions", str(path),
                 "--task", "roles"]) == 2
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
    assert main(["probe", "vidsitu", "--data", f"vidsitu:{root}", "--store", url,
                 "--contextualizer",
                 str(path), "--out", str(tmp_path / "o"), "--seeds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and len(err.splitlines()) == 1 and "Traceback" not in err
    record("Bad manifests, stores and configs (exit 2, one line)",
           f"`probe --contextualizer` naming {kind}", 1, f"refused: `{err.split(': ', 2)[-1]}`")


def test_role_decoding_drops_finished_rows_without_changing_outputs():
    """Greedy decoding with finished rows leaving the batch writes what a plain full-batch
    loop writes (the reference below re-runs every row at every step)."""
    from hiermovie.heads.srl import RoleDecoder

    torch.manual_seed(0)
    dec = RoleDecoder(6, 12, width=16, layers=1, heads=2, max_len=10).eval()
    with torch.no_grad():  # make EOS (id 3) likely, so rows finish at different steps
        dec.out.bias[3] = 0.3
    feats, prefix = torch.randn(40, 6), torch.randint(4, 12, (40, 2))
    tokens = prefix
    with torch.no_grad():
        while tokens.shape[1] < 10:
            tokens = torch.cat([tokens, dec(feats, tokens)[:, -1].argmax(-1)[:, None]], 1)
    want = [r[2:r.index(3, 2)] if 3 in r[2:] else r[2:] for r in tokens.tolist()]
    got = dec.generate(feats, prefix, eos=3)
    assert got == want
    assert len({len(r) for r in got}) > 2  # rows did finish at different steps


def test_choices_at_the_edge_of_the_search_are_reported():
    from types import SimpleNamespace

    from hiermovie.workflows.probe.report import grid_edges

    cfg = SimpleNamespace(lrs=[3e-4, 1e-3, 3e-3], epochs=60, eval_every=10)
    chosen = {"backbone": {192: {"lr": 3e-3, "epochs": 60}},
              "scratch": {192: {"lr": 1e-3, "epochs": 30}},
              "pretrained": {19: {"lr": 3e-4, "epochs": 40}}}
    edges = grid_edges(cfg, chosen)
    assert edges == ["backbone at 192 clips: lr 0.003, the largest tried, 60 epochs, the most",
                     "pretrained at 19 clips: lr 0.0003, the smallest tried"]
    assert grid_edges(SimpleNamespace(lrs=[1e-3], epochs=5, eval_every=5),
                      {"backbone": {10: {"lr": 1e-3, "epochs": 5}}}) == []


def test_verb_accuracy_per_event_group_of_a_synthetic_world(tmp_path):
    from hiermovie.datasets import synth_world as w
    from hiermovie.datasets.synth import event_groups
    from hiermovie.datasets.vidsitu import ValidTruth, verb_vocab
    from hiermovie.heads.vidsitu import score_events

    write_vidsitu(tmp_path, 4, 40, seed=2, render=False, world=w.STORY)
    valid, groups = VidSitu(tmp_path, "valid"), event_groups(tmp_path)
    vocab = verb_vocab(VidSitu(tmp_path, "train")) + sorted(w.VERBS)
    index = {v: i for i, v in enumerate(vocab)}
    wrong = index["push"]  # not a verb id: never right
    # right exactly on the plain events, wrong elsewhere
    top = torch.tensor([[[index[v] if g == "plain" else wrong] * 5
                         for v, g in zip(valid.verbs(c), groups[c], strict=True)]
                        for c in valid.clips])
    cfg = from_dict(VidSituProbeConfig, {"tasks": ["verb"], "store": "x"})
    truth = ValidTruth.read(valid, valid.clips, False, groups)
    m, _ = score_events(cfg.tasks, top, None, truth, vocab)
    assert m["verb/acc1_plain"] == 1.0
    assert m["verb/acc1_predictable"] == 0.0 and m["verb/acc1_label_only"] == 0.0
    m, _ = score_events(cfg.tasks, top, None, ValidTruth.read(valid, valid.clips, False), vocab)
    assert not any("acc1_" in k for k in m)  # no groups (a real dataset): no group metrics


def test_infill_readout_is_what_the_neighbours_say_of_an_event():
    from hiermovie.workflows.probe.rows import EventFeatures, Row

    ctx = Contextualizer(ContextualizerConfig(in_dim=12, width=16, layers=2, heads=2, ffn=32,
                                              dropout=0.0)).eval()
    row = Row("pretrained_frozen", ctx, "frozen")
    raw = torch.randn(3, 5, 1, 12)
    events = EventFeatures(torch.zeros(12), torch.ones(12), 12, "infill", concat_own=False)
    with torch.no_grad():
        a = events(row, ctx, raw, None)
        changed = raw.clone()
        changed[:, 2] += 5.0
        b = events(row, ctx, changed, None)
    assert a.shape == (3, 5, 32)
    assert torch.allclose(a[:, 2, 16:], b[:, 2, 16:], atol=1e-5)  # event 2 masked: unseen
    assert not torch.allclose(a[:, 2, :16], b[:, 2, :16], atol=1e-3)  # its plain output sees it
    assert not torch.allclose(a[:, 1, 16:], b[:, 1, 16:], atol=1e-3)  # a neighbour's infill does


def test_a_time_position_model_is_read_at_its_stored_times(bench):
    """pretrain-ctx feeds a `--model.position time` contextualizer the segments' start times;
    the probe must read it at the same times (it once used index positions, silently)."""
    from hiermovie.datasets.labelled import load_clips
    from hiermovie.feature_store import FeatureStore
    from hiermovie.workflows.probe.rows import EventFeatures, Row

    _, url = bench
    store = FeatureStore(url)
    clips = store.videos()[:4]
    torch.manual_seed(0)
    ctx = Contextualizer(ContextualizerConfig(in_dim=12, width=16, layers=1, heads=2, ffn=32,
                                              position="time")).eval()
    events = EventFeatures(torch.zeros(12), torch.ones(12), 12)
    through = events.frozen(Row("pretrained_frozen", ctx, "frozen"), ctx, load_clips(store, clips))
    feats = torch.stack([torch.from_numpy(store.get(c)) for c in clips])
    times = torch.stack([torch.from_numpy(store.times(c)[0]).float() for c in clips])
    valid = torch.ones(feats.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        direct = ctx(feats, valid, None, times)  # as pretrain-ctx runs it
        by_index = ctx(feats, valid, None, None)
    assert torch.allclose(through[..., 12:], direct, atol=1e-6)
    assert not torch.allclose(direct, by_index, atol=1e-3)  # the times matter here (0, 2, .. s)


def test_default_head_width_is_half_the_widest_rows_input():
    """docs/probe.md's rule, for every read-out: half the widest input any row's heads read
    (measured on the event features themselves: an infill read-out is two layers' outputs)."""
    from hiermovie.workflows.probe.rows import EventFeatures, Row, head_hidden

    ctx = Contextualizer(ContextualizerConfig(in_dim=12, width=16, layers=1, heads=2, ffn=32))
    rows = [Row("backbone", None, "frozen"), Row("pretrained_frozen", ctx, "frozen")]
    raw = torch.randn(2, 5, 1, 12)
    for readout, concat_own in (("last", True), ("infill", True), ("infill", False)):
        events = EventFeatures(torch.zeros(12), torch.ones(12), 12, readout, concat_own)
        with torch.no_grad():
            widths = [events(r, r.ctx, raw, None).shape[-1] for r in rows]
        assert head_hidden(rows, 12, 0, readout, concat_own) == max(widths) // 2
        assert head_hidden(rows[:1], 12, 0, readout, concat_own) == widths[0] // 2
    assert head_hidden(rows, 12, 7, "infill", True) == 7  # given: every row's


def test_a_fused_store_holding_nan_is_skipped_and_named(bench, tmp_path, capsys):
    """Features entering through --fuse_store pass the same check as the main store's: a clip
    whose fused features hold NaN is skipped and named (it was used silently, exit 0)."""
    import zarr

    root, url = bench
    fused = str(tmp_path / "fused.zarr")
    store = FeatureStore(url)
    write_store(fused, Provenance(backbone="other", dim=4, dtype="float32"),
                [VideoRecord(c, np.ones((5, 1, 4), np.float32), np.arange(5) * 2.0,
                                    np.arange(5) * 2.0 + 2, np.zeros((5, 0), np.int64))
                        for c in store.videos()])
    shard = next(iter(zarr.open_group(fused, mode="r")["shards"].group_keys()))
    zarr.open_group(fused, mode="a")[f"shards/{shard}/features"][0, 0, 0] = np.nan
    poisoned = FeatureStore(fused).videos()[0]
    out = tmp_path / "probe"
    assert run_vidsitu(from_dict(VidSituProbeConfig, {
        "data": f"vidsitu:{root}", "store": url, "seeds": 1, "epochs": 2, "eval_every": 1,
        "lrs": [1e-2], "tasks": ["verb"], "fuse_store": fused, "rows": ["backbone"],
        "out": str(out), "progress": False, "model": FAST["model"]})) == 0
    err = capsys.readouterr().err
    assert f"skipping 1 video(s) whose stored features are unusable: {poisoned}" in err
    res = json.loads((out / "results.json").read_text())
    assert all(np.isfinite(c["values"]).all() for c in res["cells"])
    record('Non-finite values',
           'probe vidsitu --fuse_store of a store holding a NaN clip',
           1,
           'the clip is skipped and named, every metric finite (was used silently)')
