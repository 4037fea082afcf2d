import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from hiermovie.datasets import load_input, lvu
from hiermovie.datasets import synth_world as w
from hiermovie.datasets.manifest import ManifestError, load_videos
from hiermovie.datasets.synth import event_groups, write_lvu, write_vidsitu
from hiermovie.datasets.synth_render import background, render_event
from hiermovie.datasets.vidsitu import VidSitu, short_role, verb_vocab


def _event(verb, vid, a0="a man", a1="a ball", rel=None):
    e = {"vid_uid": vid[:-10], "vid_seg_int": vid, "Verb": verb.split(".")[0], "VerbID": verb,
         "Arg_List": {"Arg0 (thrower)": "0", "Arg1 (thing thrown)": "1",
                      "Scene of the Event": "2", "ArgM (manner)": "3"},
         "Args": {"Arg0 (thrower)": a0, "Arg1 (thing thrown)": a1,
                  "Scene of the Event": "a gym", "ArgM (manner)": "hard"}}
    if rel:
        e["EvRel"] = rel
    return e


def _record(vid, verbs, rels):
    return {f"Ev{k + 1}": _event(v, vid, rel=None if k == 2 else rels[k - (k > 2)])
            for k, v in enumerate(verbs)}


@pytest.fixture
def vidsitu_root(tmp_path):
    ann = tmp_path / "vidsitu_annotations"
    for d in ("split_files", "vinfo_files", "vseg_ann_files"):
        (ann / d).mkdir(parents=True)
    train = ["v_aaa_seg_0_10", "v_bbb_seg_20_30"]
    valid = ["v_ccc_seg_5_15"]
    (ann / "split_files/vseg_split_train_lb.json").write_text(json.dumps(train))
    (ann / "split_files/vseg_split_valid_lb.json").write_text(json.dumps(valid))
    verbs = ["throw.01", "catch.01", "throw.01", "run.02", "speak.01"]
    rels = ["Causes", "Enables", "Reaction To", "NoRel"]
    (ann / "vseg_ann_files/vsann_train_lb.json").write_text(json.dumps(
        [_record(v, verbs, rels) for v in train]))
    (ann / "vseg_ann_files/vsann_valid_lb.json").write_text(json.dumps(
        [_record(valid[0], verbs, rels), _record(valid[0], verbs, ["NoRel"] * 4),
         _record(valid[0], verbs, rels)]))
    info = [{"vid_seg_int": v, "vid_uid": v[:-10]} for v in train]
    (ann / "vinfo_files/vinfo_train_lb.json").write_text(json.dumps(info))
    votes = {f"Ev{k}": ["throw.01"] * 6 + ["toss.01"] * 4 for k in range(1, 6)}
    (ann / "vinfo_files/vinfo_valid_lb.json").write_text(json.dumps(
        [{"vid_seg_int": valid[0], "vbid_lst": votes, "vb_lst": votes}]))
    return tmp_path


def test_vidsitu_release_layout(vidsitu_root):
    train, valid = VidSitu(vidsitu_root, "train"), VidSitu(vidsitu_root, "valid")
    assert train.clips == ["v_aaa_seg_0_10", "v_bbb_seg_20_30"] and len(valid) == 1
    assert train.verbs("v_bbb_seg_20_30")[3] == "run.02"
    assert verb_vocab(train) == ["throw.01", "catch.01", "run.02", "speak.01"]
    roles = train.roles("v_aaa_seg_0_10")[0]
    assert roles == {"Arg0": "a man", "Arg1": "a ball", "AScn": "a gym", "AMnr": "hard"}
    assert len(valid.records["v_ccc_seg_5_15"]) == 3
    assert valid.relations("v_ccc_seg_5_15") == [
        ["Causes", "NoRel", "Causes"], ["Enables", "NoRel", "Enables"],
        ["Reaction To", "NoRel", "Reaction To"], ["NoRel", "NoRel", "NoRel"]]
    assert valid.verb_votes("v_ccc_seg_5_15")[0].count("toss.01") == 4
    assert valid.majority_verbs("v_ccc_seg_5_15") == ["throw.01"] * 5
    assert train.coverage({"v_aaa_seg_0_10"}) == {"annotated": 2, "available": 1, "missing": 1}


def test_role_names():
    assert short_role("Arg2 (hitter)") == "Arg2"
    assert short_role("Scene of the Event") == "AScn"
    assert [short_role(f"ArgM ({m})") for m in ("location", "manner", "purpose", "direction",
                                                 "goal")] == ["ALoc", "AMnr", "APrp", "ADir",
                                                              "AGol"]
    with pytest.raises(ValueError):
        short_role("Something else")


def test_lvu_release_layout(tmp_path):
    d = tmp_path / "lvu_1.0"
    (d / "scene").mkdir(parents=True)
    (d / "like_ratio").mkdir()
    (d / "view_count").mkdir()
    (d / "scene/train.csv").write_text("class_id class_name youtube_id imdb_id\n"
                                       "2 school yt_A tt01\n5 restaurant yt_B tt02\n")
    (d / "like_ratio/train.csv").write_text("like dislike youtube_id imdb_id\n900 100 yt_A tt01\n")
    (d / "view_count/train.csv").write_text("view_count youtube_id imdb_id\n1000 yt_B tt02\n")
    scene = lvu.load_task(tmp_path, "scene", "train")
    assert [(e.video_id, e.target, e.class_name) for e in scene] == [
        ("yt_A", 2, "school"), ("yt_B", 5, "restaurant")]
    like = lvu.load_task(tmp_path, "like_ratio", "train")[0]
    assert like.video_id == "yt_A"
    assert like.target == pytest.approx(0.9 * 10 - 9.138220535629456)
    views = lvu.load_task(tmp_path, "view_count", "train")[0]
    assert views.target == pytest.approx(math.log(1000) - 11.76425435683139)
    with pytest.raises(ManifestError, match="missing"):
        lvu.load_task(tmp_path, "genre", "train")


def test_manifests(tmp_path):
    (tmp_path / "m.csv").write_text("video_id,path,start_s,end_s\na,a.mp4,0,2\na,a.mp4,2,4\n"
                                    "b,b.mp4,1,3\n")
    items = load_videos(str(tmp_path / "m.csv"))
    assert [(i.video_id, i.segments) for i in items] == [("a", ((0, 2), (2, 4))),
                                                         ("b", ((1, 3),))]
    assert items[0].path == str(tmp_path / "a.mp4")
    (tmp_path / "bad.csv").write_text("video,path\nx,y\n")
    with pytest.raises(ManifestError, match="missing column.*video_id"):
        load_videos(str(tmp_path / "bad.csv"))
    (tmp_path / "dup.jsonl").write_text('{"video_id": "a", "path": "a.mp4"}\n'
                                        '{"video_id": "a", "path": "b.mp4"}\n')
    with pytest.raises(ManifestError, match="duplicate video id 'a'"):
        load_videos(str(tmp_path / "dup.jsonl"))
    (tmp_path / "times.jsonl").write_text('{"video_id": "a", "path": "a.mp4", '
                                          '"segments": [[3, 1]]}\n')
    with pytest.raises(ManifestError, match="end 1.0 <= start 3.0"):
        load_videos(str(tmp_path / "times.jsonl"))


def test_synth_loads_through_the_same_adapters(tmp_path):
    write_vidsitu(tmp_path, 6, 3, seed=1, size=64, workers=1)
    write_lvu(tmp_path, 5, seed=1, size=64, workers=1)
    train, valid = VidSitu(tmp_path, "train"), VidSitu(tmp_path, "valid")
    assert len(train) == 6 and len(valid) == 3
    clip = valid.clips[0]
    assert len(valid.records[clip]) == 3 and len(valid.verb_votes(clip)[0]) == 10
    assert set(valid.roles(clip)[0]) == {"Arg0", "Arg1", "AScn", "ALoc"}
    assert all(r in w.RELATIONS for pair in valid.relations(clip) for r in pair)
    assert len(load_input(f"vidsitu:{tmp_path}")) == 9
    groups = event_groups(tmp_path)
    assert sorted(groups) == sorted(train.clips + valid.clips)
    assert all(len(g) == 5 and set(g) <= {"plain", "label_only"} for g in groups.values())
    assert event_groups(tmp_path / "elsewhere") is None
    assert len(load_input(f"lvu:{tmp_path}")) == 5
    for task, classes in lvu.TASKS.items():
        rows = lvu.load_task(tmp_path, task, "train")
        assert len(rows) == 3
        if classes:
            assert all(0 <= r.target < classes for r in rows)
    # the video shows the script the annotations describe: 10 s at 30 fps
    import decord
    vr = decord.VideoReader(str(train.video_path(train.clips[0])))
    assert len(vr) == 300


@pytest.mark.parametrize("p_follow", [0.0, 0.8])
def test_context_verbs_need_neighbours(p_follow):
    rng = np.random.default_rng(0)
    scripts = [w.sample_script(rng, world=w.World(p_follow=p_follow)) for _ in range(3000)]
    pairs = [(a.verb, b.verb) for s in scripts for a, b in zip(s, s[1:], strict=False)
             if a.verb in w.PLAIN_VERBS and b.verb in w.PLAIN_VERBS]
    follows = np.mean([b in w.SUCCESSORS[a] for a, b in pairs])
    assert abs(follows - (p_follow + (1 - p_follow) * 0.2)) < 0.03
    c = w.neighbour_ceiling(w.World(p_follow=p_follow))
    # from its own segment a look-alike is a coin flip (the pairs are balanced); its
    # neighbours name it exactly
    assert c["own"]["label_only"] < 0.56 and c["with_neighbours"]["label_only"] > 0.97
    assert c["own"]["plain"] == 1.0 and "predictable" not in c["own"]


def test_story_world_hides_events_that_neighbours_show():
    c = w.neighbour_ceiling(w.STORY)
    assert c["own"]["plain"] == 1.0
    # a hidden event's verb: near the prior alone, ~3x that from the adjacent events
    assert c["own"]["predictable"] < 0.2
    assert c["with_neighbours"]["predictable"] > c["own"]["predictable"] + 0.2
    assert c["own"]["label_only"] < 0.56 and c["with_neighbours"]["label_only"] > 0.8
    rng = np.random.default_rng(1)
    scripts = [w.sample_script(rng, world=w.STORY) for _ in range(2000)]
    hidden = [[e.hidden for e in s] for s in scripts]
    assert not any(a and b for h in hidden for a, b in zip(h, h[1:], strict=False))
    assert all(not e.hidden for s in scripts for e in s if e.verb in w.CONTEXT_VERBS)
    assert 0.15 < np.mean(hidden) < 0.3
    turns = np.mean([b.agent == a.patient for s in scripts for a, b in zip(s, s[1:],
                                                                           strict=False)])
    assert abs(turns - (0.7 + 0.3 / 4)) < 0.03  # else a random pair of the cast of four
    e = next(e for s in scripts for e in s if e.hidden)
    frames = render_event(e, 6, 64, np.random.default_rng(0))
    bg = background(e.scene, 64)
    assert (frames == frames[0]).all() and (frames[0, :7] == bg[:7]).all()
    assert (frames[0, 8:] == 35).all()  # the panel: no actor anywhere


def _decode_all(path):
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(float)


def test_synth_is_deterministic_by_seed(tmp_path):
    for name in ("a", "b"):
        write_vidsitu(tmp_path / name, 2, 1, seed=7, size=32, workers=1)
    ann = "vidsitu_annotations/vseg_ann_files/vsann_valid_lb.json"
    assert (tmp_path / "a" / ann).read_text() == (tmp_path / "b" / ann).read_text()
    # the videos agree to within rounding, not byte for byte: two CI runs saw the encoded
    # files differ (6% of decoded values off by up to 8; cause not established)
    a, b = (VidSitu(tmp_path / n, "valid") for n in ("a", "b"))
    for clip in a.clips:
        fa, fb = (_decode_all(ds.video_path(clip)) for ds in (a, b))
        assert fa.shape == fb.shape and np.abs(fa - fb).mean() < 0.5
    write_vidsitu(tmp_path / "c", 2, 1, seed=8, size=32, workers=1)
    assert (tmp_path / "c" / ann).read_text() != (tmp_path / "a" / ann).read_text()


def test_synth_pool_is_unlabelled_video_of_the_same_world(tmp_path):
    from hiermovie.datasets.synth import write_pool
    from hiermovie.workflows.synth import SynthConfig, run_synth

    assert run_synth(SynthConfig(out=str(tmp_path), train=1, valid=1, pool=2, size=32,
                                 workers=1)) == 0
    pool = sorted((tmp_path / "pool").iterdir())
    assert [p.name for p in pool] == ["pool000000.mp4", "pool000001.mp4"]  # videos only
    frames = _decode_all(pool[0])
    labelled = _decode_all(VidSitu(tmp_path, "train").video_path(VidSitu(tmp_path,
                                                                         "train").clips[0]))
    assert frames.shape == labelled.shape  # same world: 5 events x 2 s at the same size
    assert np.abs(frames - _decode_all(pool[1])).mean() > 1  # different clips
    before = pool[0].stat().st_mtime_ns
    write_pool(tmp_path / "pool", 3, size=32, workers=1)  # grows, keeps what it has
    assert len(list((tmp_path / "pool").iterdir())) == 3
    assert pool[0].stat().st_mtime_ns == before


def test_synth_lvu_labels_do_not_depend_on_the_hash_seed(tmp_path):
    # a label tie once went by set order, so two runs of the same seed disagreed
    code = ("import sys; from hiermovie.datasets.synth import write_lvu; "
            "write_lvu(sys.argv[1], 60, seed=0, render=False)")
    for hash_seed in ("0", "1"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed})
    for task in w.LVU_CLASSES:
        a, b = ((tmp_path / s / "lvu_1.0" / task / "train.csv").read_text() for s in "01")
        assert a == b, task


def _kinetics_tree(root, rows_by_split, per_label=(), suffix=".mp4", make=None):
    """A tree as the official Kinetics downloader leaves it: annotation CSVs, videos flat in
    their split's folder or (splits in `per_label`) one folder per label."""
    from hiermovie.datasets.kinetics import clip_name

    (root / "annotations").mkdir(parents=True)
    for split, rows in rows_by_split.items():
        lines = ["label,youtube_id,time_start,time_end,split"]
        for label, yid, start, end, present in rows:
            lines.append(f'"{label}",{yid},{start},{end},{split}')
            if present:
                folder = root / split / (label if split in per_label else "")
                folder.mkdir(parents=True, exist_ok=True)
                (make or (lambda p: p.write_bytes(b"")))(folder / f"{clip_name(yid, start, end)}"
                                                          f"{suffix}")
        (root / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")


def test_kinetics_release_layout_partial_download(tmp_path, capsys):
    """Missing videos are counted, not fatal; label folders (with spaces) and flat folders
    both resolve; a split without a folder yields nothing; labels come with the items."""
    from hiermovie.datasets.kinetics import Kinetics

    _kinetics_tree(tmp_path, {
        "train": [("air drumming", "abcdefghijk", 10, 20, True),
                  ("abseiling", "--xyzxyzxyz", 0, 10, False),  # removed from YouTube
                  ("abseiling", "A_b-C_d-E_f", 95, 105, True)],
        "val": [("air drumming", "zzzzzzzzzzz", 3, 13, True)],
        "test": [("abseiling", "qqqqqqqqqqq", 1, 11, True)]}, per_label={"train"})
    import shutil

    shutil.rmtree(tmp_path / "test")  # a partial download: the test split not fetched
    items = load_input(f"kinetics:{tmp_path}", "train")
    assert [(i.video_id, i.label) for i in items] == [
        ("abcdefghijk_000010_000020", "air drumming"), ("A_b-C_d-E_f_000095_000105", "abseiling")]
    assert items[0].path.endswith("train/air drumming/abcdefghijk_000010_000020.mp4")
    assert items[0].segments == ((0.0, 10.0),)
    assert "train 2 of 3" in capsys.readouterr().out
    everything = load_input(f"kinetics:{tmp_path}")
    assert len(everything) == 3 and "test 0 of 1" in capsys.readouterr().out
    assert Kinetics(tmp_path, "train").labels == ["abseiling", "air drumming"]
    with pytest.raises(ManifestError, match="no valid.csv"):
        load_input(f"kinetics:{tmp_path}", "valid")


def test_kinetics_refuses_bad_annotation_files(tmp_path):

    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.csv").write_text("label,youtube_id\nx,abc\n")
    with pytest.raises(ManifestError, match=r"train.csv: missing column\(s\) time_start"):
        load_input(f"kinetics:{tmp_path}", "train")
    (tmp_path / "annotations" / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nx,abc,5,5,train\n")
    with pytest.raises(ManifestError, match=r"train.csv:2: time_end 5 is not after"):
        load_input(f"kinetics:{tmp_path}", "train")


def test_synth_actions_are_trimmed_single_motions_in_the_kinetics_layout(tmp_path):
    """`synth --actions`: each clip shows one motion of the world for 2-4 s, its file is where
    the Kinetics layout says and lasts what its CSV row says (read by PyAV, not our decoder)."""
    import av

    from hiermovie.datasets.synth_world import MOTIONS
    from hiermovie.workflows.synth import SynthConfig, run_synth

    run_synth(SynthConfig(out=str(tmp_path), train=0, valid=0, actions=20, size=32))
    items = load_input(f"kinetics:{tmp_path / 'actions'}", "train")
    assert len(items) == 20 and {i.label for i in items} <= set(MOTIONS)
    assert len({i.label for i in items}) > 5
    for it in items[:4]:
        with av.open(it.path) as f:
            frames = sum(1 for _ in f.decode(video=0))
        assert frames == round(it.segments[0][1] * 30) and 2 <= it.segments[0][1] <= 4
    assert len(load_input(f"kinetics:{tmp_path / 'actions'}", "val")) == 2


def test_the_held_out_split_is_stable_and_never_empty():
    from hiermovie.datasets.sequences import split_videos

    ids = [f"v{i}" for i in range(200)]
    train, val = split_videos(ids, 0.1)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(ids)
    assert 5 < len(val) < 40
    # more videos in the store: every video held out before is still held out
    assert set(val) <= set(split_videos(ids + [f"w{i}" for i in range(100)], 0.1)[1])
    assert len(split_videos(["a", "b"], 0.01)[1]) == 1  # always one, however small the fraction
