import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hiermovie.config import from_dict
from hiermovie.contextualizer import Contextualizer, ContextualizerConfig, random_mask, targets
from hiermovie.feature_store import Provenance, VideoRecord
from hiermovie.workflows.checkpoints import load_checkpoint
from hiermovie.workflows.pretrain_ctx import PretrainCtxConfig, run_pretrain_ctx
from tests.conftest import write_store
from tests.reliability import record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Videos whose segments share a per-video component, so context predicts masked ones."""
    url = str(tmp_path_factory.mktemp("ctx") / "s.zarr")
    rng = np.random.default_rng(0)
    recs = []
    for i in range(60):
        n = int(rng.integers(3, 9))
        base = rng.standard_normal(16)
        feats = (base + 0.3 * rng.standard_normal((n, 16)))[:, None, :].astype(np.float32)
        start = np.arange(n) * 2.0
        recs.append(VideoRecord(f"v{i:03d}", feats, start, start + 2,
                                np.zeros((n, 0), np.int64)))
    return write_store(url, Provenance(backbone="t", dim=16, dtype="float32"),
                       *(recs[s:s + 20] for s in range(0, 60, 20)))


def _cfg(store, out, **kw):
    base = {"store": store, "out": str(out), "steps": 30, "batch_size": 8, "val_every": 10,
            "ckpt_every": 10, "warmup": 5, "lr": 1e-3, "progress": False, "device": "cpu",
            "model": {"width": 32, "layers": 2, "heads": 4, "ffn": 64, "dropout": 0.1}}
    base.update(kw)
    return from_dict(PretrainCtxConfig, base)


def test_mask_properties():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 40, (500,))
    valid = torch.arange(40)[None] < lengths[:, None]
    for kw in ({"ratio": 0.3}, {"count": 3}, {"ratio": 0.5, "span": 3}):
        m = random_mask(valid, generator=g, **kw)
        assert not (m & ~valid).any(), "padding was masked"
        assert (m.sum(1) >= 1).all(), "a sequence had nothing masked"
        longer = lengths > 1
        assert (m.sum(1)[longer] < lengths[longer]).all(), "a whole sequence was masked"
    # how many are masked, worked out by hand: a ratio rounds, at least one is masked, and
    # never a whole sequence longer than one segment
    lengths = torch.tensor([1, 2, 3, 7, 10, 11, 40])
    valid = torch.arange(40)[None] < lengths[:, None]
    for kw, counts in (({"ratio": 0.3}, [1, 1, 1, 2, 3, 3, 12]),
                       ({"count": 3}, [1, 1, 2, 3, 3, 3, 3])):
        m = random_mask(valid, generator=g, **kw)
        assert m.sum(1).tolist() == counts, kw
    m = random_mask(torch.ones(200, 30, dtype=torch.bool), ratio=0.4, span=4, generator=g)
    runs = (m[:, 1:] & ~m[:, :-1]).sum(1) + m[:, 0]  # number of masked runs per row
    assert (runs <= 3).all()  # 12 masked positions in runs of 4


@pytest.mark.parametrize("mode", ["pool", "flatten"])
def test_save_load_round_trip(tmp_path, mode):
    cfg = ContextualizerConfig(in_dim=16, tokens_per_segment=4, width=32, layers=2, heads=4,
                               ffn=64, token_mode=mode, position="time")
    model = Contextualizer(cfg).eval()
    x = torch.randn(2, 5, 4, 16)
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]).bool()
    start = torch.arange(5.0).expand(2, 5) * 2
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    loaded = Contextualizer.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        a = model(x, valid, random_mask(valid), start)
        b = loaded(x, valid, None, start)
        c = model(x, valid, None, start)
    assert a.shape == (2, 5, 32)
    assert torch.equal(b, c)


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("target", ["feature", "ema"])  # ema: the teacher resumes too
def test_resume_matches_uninterrupted(store, tmp_path, target):
    assert run_pretrain_ctx(_cfg(store, tmp_path / "full", target=target)) == 0
    full = _losses(tmp_path / "full")
    assert len(full) == 30
    assert run_pretrain_ctx(_cfg(store, tmp_path / "cut", stop_at=17,
                                 target=target)) == 0  # "killed" at 17
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 10
    assert run_pretrain_ctx(_cfg(store, tmp_path / "cut", resume=True, target=target)) == 0
    resumed = _losses(tmp_path / "cut")
    # steps 11..17 ran twice (before the kill and after the resume); the log keeps each once
    assert resumed == full
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["val_loss"] == \
        json.loads((tmp_path / "full" / "summary.json").read_text())["val_loss"]


def test_learns_to_use_context(store, tmp_path):
    # l2: the store's segments share their video's component, which l2 regresses and
    # infonce_clip (the default) by design cannot use
    assert run_pretrain_ctx(_cfg(store, tmp_path / "l", steps=200, val_every=50, lr=3e-3,
                                 loss="l2")) == 0
    summary = json.loads((tmp_path / "l" / "summary.json").read_text())
    # masked segments share their video's component with the visible ones
    assert summary["val_loss"] < 0.7 * summary["val_loss_mean_feature"]
    assert summary["val_loss"] < 0.7 * summary["val_loss_untrained"]
    assert (tmp_path / "l" / "loss.png").exists()
    loaded = Contextualizer.from_pretrained(tmp_path / "l" / "contextualizer")
    assert loaded.config.in_dim == 16


def test_collapse_check_tells_kept_segments_from_a_clip_summary():
    from hiermovie.contextualizer.collapse import clip_share, identity_readout

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(64, 5, 12, generator=g) + 2 * torch.randn(64, 1, 12, generator=g)
    valid = torch.ones(64, 5, dtype=torch.bool)
    valid[:, 4] = torch.arange(64) % 2 == 0  # some clips have 4 segments
    mix = torch.randn(12, 20, generator=g)
    kept = feats @ mix  # a linear re-mapping keeps every segment
    summary = feats.mean(1, keepdim=True).expand(-1, 5, -1) @ mix  # the clip, repeated
    noisy = summary + 1e-3 * torch.randn(64, 5, 20, generator=g)
    assert identity_readout(kept, feats, valid)["identity_readout"] > 0.95
    collapsed = identity_readout(noisy, feats, valid)
    assert collapsed["identity_readout"] < collapsed["identity_chance"] + 0.15
    assert 0.2 < collapsed["identity_chance"] < 0.25  # 1/5 and 1/4 clips, half each
    assert clip_share(summary, valid) > 0.99 > clip_share(kept, valid)
    assert identity_readout(kept[:1], feats[:1], valid[:1])["identity_readout"] is None


def test_corrupted_checkpoint_is_refused(store, tmp_path):
    assert run_pretrain_ctx(_cfg(store, tmp_path / "r", steps=10)) == 0
    ckpt = tmp_path / "r" / "checkpoint.pt"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted or incomplete"):
        run_pretrain_ctx(_cfg(store, tmp_path / "r", steps=20, resume=True))
    record("Faults", "pretrain-ctx checkpoint with one flipped byte, resumed", 1,
           "detected by the sha256 trailer in the same file and refused, not loaded")


def test_ddp_two_processes(store, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "hiermovie.workflows.cli", "pretrain-ctx",
           "--store", store, "--out", str(out), "--steps", "12", "--batch_size", "4",
           "--val_every", "6", "--ckpt_every", "6", "--device", "cpu", "--progress", "false",
           "--model.width", "32", "--model.heads", "4", "--model.ffn", "64",
           "--model.layers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    # Run.finish compares the ranks' weights: without DDP's all-reduced gradients each rank
    # would step on its own half of the data, and the job fails with "different weights"
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes (DDP)" in r.stdout
    assert len(_losses(out)) == 12  # rank 0 logs every step
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 12
    assert (out / "contextualizer" / "model.safetensors").exists()


def test_centered_targets_drop_what_the_clip_shares():

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 1, 8, generator=g)
    valid = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    shift = torch.randn(2, 1, 1, 8, generator=g) * 10  # a per-clip component (scene, cast)
    assert torch.allclose(targets(x + shift, valid, centered=True),
                          targets(x, valid, centered=True), atol=1e-4)
    assert not torch.allclose(targets(x + shift), targets(x), atol=1e-1)
    # padding never enters a clip's mean
    padded = x.clone()
    padded[1, 3:] = 1e3
    assert torch.allclose(targets(padded, valid, True)[1, :3], targets(x, valid, True)[1, :3],
                          atol=1e-4)


def test_ema_targets_carry_context_and_the_teacher_follows_the_student():
    from hiermovie.contextualizer import MaskPredictor, MaskSpec
    from hiermovie.workflows.training import ema_momentum

    torch.manual_seed(0)
    model = MaskPredictor(Contextualizer(ContextualizerConfig(in_dim=16, width=32, layers=2,
                                                              heads=4, ffn=64)), 16,
                          MaskSpec(target="ema", ema_layers=2))
    feats, valid = torch.randn(2, 5, 1, 16), torch.ones(2, 5, dtype=torch.bool)
    other = feats.clone()
    other[:, 4] = torch.randn(2, 1, 16)  # only the last segment changes
    t, t2 = model.targets(feats, valid, None), model.targets(other, valid, None)
    assert t.shape == (2, 5, 32) and not t.requires_grad
    assert not torch.allclose(t[:, 0], t2[:, 0], atol=1e-4)  # segment 0's target sees segment 4
    assert torch.allclose(targets(feats, valid)[:, 0], targets(other, valid)[:, 0])  # feature
    with torch.no_grad():
        for p in model.ctx.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.teacher.parameters()]
    model.ema_update(0.75)
    for b, p, s in zip(before, model.teacher.parameters(), model.ctx.parameters(),
                       strict=True):
        assert torch.allclose(p, 0.75 * b + 0.25 * s)
    assert ema_momentum(0, 100, 0.99) == pytest.approx(0.99)
    assert ema_momentum(100, 100, 0.99) == pytest.approx(1.0)
    assert "teacher.proj.0.weight" in model.state_dict()  # checkpointed with the student


def test_visible_weight_trains_the_visible_outputs(store, tmp_path):
    from hiermovie.contextualizer import MaskPredictor, MaskSpec

    ctx = Contextualizer(ContextualizerConfig(in_dim=16, width=32, layers=1, heads=4, ffn=64))
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(4, 6, 1, 16, generator=g)
    batch = {"features": feats, "mask": torch.ones(4, 6, dtype=torch.bool),
             "start_s": torch.arange(6.0).expand(4, 6)}
    grads = {}
    for w in (0.0, 1.0):
        model = MaskPredictor(ctx, 16, MaskSpec(visible_weight=w))
        torch.manual_seed(0)
        model.head.reset_parameters()
        model.zero_grad()
        loss, n = model(batch, torch.Generator().manual_seed(1))
        loss.backward()
        grads[w] = model.ctx.proj[0].weight.grad.clone()
        assert n == 4 * 2  # the masked positions only are counted (30% of 6, per clip)
    assert not torch.allclose(grads[0.0], grads[1.0])
    assert run_pretrain_ctx(_cfg(store, tmp_path / "v", steps=20, visible_weight=0.5,
                                 target="centered")) == 0
    summary = json.loads((tmp_path / "v" / "summary.json").read_text())
    mask = summary["config"]["mask"]  # the flat names given, recorded in their section
    assert mask["visible_weight"] == 0.5 and mask["target"] == "centered"


def test_keep_best_writes_the_lowest_validation_loss_model(store, tmp_path):

    from hiermovie.contextualizer import MaskPredictor
    from hiermovie.datasets.sequences import sequences, split_videos
    from hiermovie.feature_store import FeatureStore
    from hiermovie.workflows.pretrain_ctx.eval import evaluate

    # lr high enough that the validation loss goes up and down: the kept model is the best
    # (l2: on this store its validation loss is known to rise and fall at this lr)
    cfg = _cfg(store, tmp_path / "b", steps=40, val_every=5, lr=3e-2, keep="best", loss="l2")
    assert run_pretrain_ctx(cfg) == 0
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    vals = {r["step"]: r["val_loss"] for r in rows if "val_loss" in r}
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    best = min(vals, key=vals.get)
    assert best < 40, vals  # else last and best are the same model and this shows nothing
    assert summary["kept_step"] == best and summary["val_loss"] == vals[best]
    # the written contextualizer is that step's model: its validation loss is the best one
    st = FeatureStore(store)
    _, val_ids = split_videos(list(st.videos()), cfg.val_fraction)
    val_ds, collate, _ = sequences([st], val_ids, cfg.window)
    model = MaskPredictor.from_pretrained(tmp_path / "b" / "contextualizer", 16, cfg.mask)
    assert abs(evaluate(model, val_ds, collate, cfg.batch_size, torch.device("cpu"))
               - vals[best]) < 1e-5


def test_bert_corruption_shows_the_token_another_segment_or_itself():
    from hiermovie.contextualizer.masking import bert_corrupt

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(64, 20, 1, 8, generator=g)
    valid = torch.ones(64, 20, dtype=torch.bool)
    valid[:, 15:] = False
    masked = random_mask(valid, ratio=0.5, generator=g)
    out, token = bert_corrupt(feats, valid, masked, generator=g)
    assert not (token & ~masked).any() and torch.equal(out[~masked], feats[~masked])
    same = (out == feats).all(-1).all(-1)
    swapped = masked & ~token & ~same
    kept = masked & ~token & same
    n = masked.sum().item()
    assert abs(token.sum().item() / n - 0.8) < 0.03
    assert abs(swapped.sum().item() / n - 0.1) < 0.03 and abs(kept.sum().item() / n - 0.1) < 0.03
    real = {tuple(f.flatten().tolist()) for f in feats[valid]}
    assert all(tuple(f.flatten().tolist()) in real for f in out[swapped])  # never padding


def test_channel_targets_are_standardised_per_channel_and_segment_ones_per_segment():
    g = torch.Generator().manual_seed(0)
    feats = 3 + torch.randn(8, 6, 2, 5, generator=g) * torch.arange(1.0, 6.0)
    valid = torch.ones(8, 6, dtype=torch.bool)
    valid[:, 4:] = False
    ch = targets(feats, valid, norm="channel")[valid]
    assert torch.allclose(ch.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(ch.std(0), torch.ones(5), atol=1e-4)
    seg = targets(feats, valid)[valid]
    assert torch.allclose(seg.mean(1), torch.zeros(len(seg)), atol=1e-5)


def test_decay_on_weights_only_spares_biases_norms_mask_token_and_embeddings():
    from hiermovie.contextualizer import MaskPredictor

    ctx = Contextualizer(ContextualizerConfig(in_dim=16, width=32, layers=1, heads=4, ffn=64,
                                              tokens_per_segment=2, token_mode="flatten"))
    model = MaskPredictor(ctx, 16)
    every = model.param_groups(0.05, "all")
    assert len(every) == 1 and every[0]["weight_decay"] == 0.05
    decayed, spared = model.param_groups(0.05, "weights")
    ids = {id(p) for p in spared["params"]}
    assert spared["weight_decay"] == 0.0 and decayed["weight_decay"] == 0.05
    assert id(ctx.mask_token) in ids and id(ctx.token_embed.weight) in ids
    assert id(ctx.norm.weight) in ids and id(ctx.proj[0].bias) in ids
    assert id(ctx.proj[0].weight) not in ids
    assert len(ids) + len(decayed["params"]) == len(list(model.parameters()))


def test_the_objective_audit_options_train(store, tmp_path):
    assert run_pretrain_ctx(_cfg(store, tmp_path, steps=12, mask_mode="bert",
                                 target_norm="channel", decay="weights")) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    config = summary["config"]
    assert (config["mask"]["mode"], config["mask"]["norm"], config["decay"]) == (
        "bert", "channel", "weights")


def test_clip_infonce_cannot_be_answered_by_what_a_clip_shares():
    """The negatives are the clip's other segments: predicting the clip's shared part (which
    scores well under l2 when it dominates the targets) scores about chance, log(segments);
    predicting each segment's own target scores near 0; padding is never a candidate."""
    from hiermovie.contextualizer.objectives import clip_infonce, mask_loss

    g = torch.Generator().manual_seed(0)
    shared = 10 * torch.randn(3, 1, 8, generator=g)
    own = torch.randn(3, 5, 8, generator=g)
    tgt = shared + own
    valid = torch.ones(3, 5, dtype=torch.bool)
    valid[2, 3:] = False  # a 3-segment clip, padded
    scored = valid.clone()
    summary = shared.expand(3, 5, 8)
    scored[0, 4] = scored[1, 4] = False
    # 4 scored segments in each 5-segment clip, 3 in the 3-segment one
    chance = (8 * np.log(5) + 3 * np.log(3)) / 11
    assert clip_infonce(summary, tgt, valid, scored).item() == pytest.approx(chance, rel=0.01)
    assert mask_loss(summary[scored], tgt[scored], "cosine") < 0.1  # l2/cosine: nearly right
    assert clip_infonce(own, own, valid, scored, temperature=0.01).item() < 1e-3
    # a padded position holding exactly what segment (2, 0) predicts would take its mass if
    # padding were a candidate
    pred, leaky = tgt.clone(), tgt.clone()
    leaky[2, 4] = pred[2, 0] * 3
    assert torch.equal(clip_infonce(pred, tgt, valid, scored),
                       clip_infonce(pred, leaky, valid, scored))


def test_infonce_clip_trains(store, tmp_path):
    assert run_pretrain_ctx(_cfg(store, tmp_path, steps=12, loss="infonce_clip")) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["mask"]["loss"] == "infonce_clip"
    assert np.isfinite(summary["val_loss"])


def test_clip_share_is_not_reported_where_the_clips_cannot_show_it():
    """One held-out clip (share 0 whatever the model) or only one-segment clips (share 1):
    None, and pretrain-ctx says so instead of printing 0.00."""
    from hiermovie.contextualizer.collapse import clip_share

    x = torch.randn(1, 4, 8)
    assert clip_share(x, torch.ones(1, 4, dtype=torch.bool)) is None
    assert clip_share(torch.randn(3, 1, 8), torch.ones(3, 1, dtype=torch.bool)) is None
    two = torch.ones(2, 4, dtype=torch.bool)
    assert 0 <= clip_share(torch.randn(2, 4, 8), two) <= 1


def test_resume_refuses_a_pickled_or_misfitting_checkpoint_in_one_line(store, tmp_path, capsys):
    """`--resume` of a checkpoint whose pickle would run code (with a valid checksum: anyone
    can write one) or of one trained on features of another width: exit 2, one line naming
    the checkpoint (they were tracebacks), and the code never runs."""
    import hashlib
    import pickle

    from hiermovie.workflows.checkpoints import TRAILER
    from hiermovie.workflows.cli import main

    class Boom:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    out = tmp_path / "evil"
    out.mkdir()
    body = pickle.dumps({"model": Boom(), "optimizer": {}, "step": 1})
    (out / "checkpoint.pt").write_bytes(
        body + TRAILER + hashlib.sha256(body).hexdigest().encode() + b"\n")
    args = ["pretrain-ctx", "--store", store, "--steps", "4", "--progress", "false",
            "--model.width", "32", "--model.layers", "1", "--model.heads", "4",
            "--model.ffn", "64", "--resume", "true"]
    assert main([*args, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "checkpoint.pt: refused to load" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "pickled code ran" not in captured.out + captured.err
    # a run on 16-d features, resumed on 8-d ones
    narrow = str(tmp_path / "narrow.zarr")
    rng = np.random.default_rng(1)
    write_store(narrow, Provenance(backbone="t", dim=8, dtype="float32"),
                [VideoRecord(f"n{i}", rng.standard_normal((4, 1, 8)).astype(np.float32),
                             np.arange(4.0), np.arange(4.0) + 2, np.zeros((4, 0), np.int64))
                 for i in range(40)])
    wide = tmp_path / "wide"
    assert main([*args, "--out", str(wide), "--resume", "false", "--ckpt_every", "2"]) == 0
    capsys.readouterr()
    assert main([*args[:2], narrow, *args[3:], "--out", str(wide), "--steps", "8"]) == 2
    err = capsys.readouterr().err
    assert "does not fit this run's model" in err and "size mismatch" in err, err
    assert len(err.strip().splitlines()) == 1
    record('Refusals in one line',
           'pretrain-ctx --resume of a pickled checkpoint that runs code (valid checksum), '
           'and of one trained on features of another width',
           2,
           'exit 2, one line each, the code never ran (were tracebacks)')


def test_a_full_disk_while_checkpointing_is_one_line_and_the_resume_is_exact(store, tmp_path,
                                                                             monkeypatch, capsys):
    """The disk fills while pretrain-ctx writes its second checkpoint: one line naming the
    file and the reason, exit 1 (the disk's fault, not the input's; it was a traceback), the
    first checkpoint intact, and --resume then ends where an uninterrupted run does."""
    import errno

    from hiermovie.workflows import checkpoints
    from hiermovie.workflows.cli import main

    args = ["pretrain-ctx", "--store", store, "--steps", "6", "--ckpt_every", "2",
            "--val_every", "2", "--progress", "false", "--model.width", "32",
            "--model.layers", "1", "--model.heads", "4", "--model.ffn", "64"]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", "checkpoint.tmp")
        return real_fsync(fd)

    monkeypatch.setattr(checkpoints.os, "fsync", fsync)
    capsys.readouterr()
    out = tmp_path / "disk"
    assert main([*args, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "rerun" in err and len(err.splitlines()) == 1
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2
    monkeypatch.setattr(checkpoints.os, "fsync", real_fsync)
    assert main([*args, "--out", str(out), "--resume", "true"]) == 0
    assert _losses(out) == _losses(tmp_path / "full")
    record('Faults',
           'the disk fills while pretrain-ctx writes its second checkpoint',
           1,
           'one line, exit 1; the first checkpoint intact; --resume ends where an '
           'uninterrupted run does')


def test_both_predictors_save_and_load_as_a_folder(tmp_path):
    from hiermovie.contextualizer import MaskPredictor
    from hiermovie.contextualizer.predictors import LabelPredictor

    cfg = ContextualizerConfig(in_dim=16, width=32, layers=1, heads=4, ffn=64)
    batch = {"features": torch.randn(2, 5, 1, 16), "mask": torch.ones(2, 5, dtype=torch.bool),
             "start_s": torch.arange(5.0).expand(2, 5), "verbs": torch.randint(0, 7, (2, 5)),
             "relations": torch.randint(0, 3, (2, 4))}
    for make, load in ((lambda c: MaskPredictor(c, 16), lambda p: MaskPredictor.from_pretrained(
            p, 16)), (lambda c: LabelPredictor(c, 7, 3),
                      lambda p: LabelPredictor.from_pretrained(p, 7, 3))):
        torch.manual_seed(0)
        model = make(Contextualizer(cfg)).eval()
        path = tmp_path / type(model).__name__
        model.save_pretrained(path)
        back = load(path).eval()
        assert set(model.HEADS.values()) <= {p.stem for p in path.glob("*.safetensors")}
        for a, b in zip(model.state_dict().values(), back.state_dict().values(), strict=True):
            assert torch.equal(a, b)
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert torch.equal(model(batch, g1)[0], back(batch, g2)[0])


def test_time_scale_divides_the_start_times_a_time_position_model_reads():
    from hiermovie.contextualizer import Contextualizer, ContextualizerConfig

    def model(scale: float) -> Contextualizer:
        torch.manual_seed(0)
        return Contextualizer(ContextualizerConfig(
            in_dim=8, width=16, layers=1, heads=2, ffn=32, position="time",
            time_scale=scale)).eval()

    x, valid = torch.randn(1, 6, 1, 8), torch.ones(1, 6, dtype=torch.bool)
    start = torch.arange(6.0)[None] * 2
    with torch.no_grad():
        one, two = model(1.0)(x, valid, start_s=start), model(2.0)(x, valid, start_s=2 * start)
        other = model(1.0)(x, valid, start_s=2 * start)
    torch.testing.assert_close(one, two)
    assert not torch.allclose(one, other)  # the times do reach the model
