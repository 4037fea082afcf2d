"""Render the synthetic benchmark as real mp4 files with annotations in the exact VidSitu and
LVU release layouts, so that it loads through the same adapters as the real data."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hiermovie.datasets import synth_world as w
from hiermovie.datasets.synth_render import render_event
from hiermovie.datasets.video_io import write_video

if TYPE_CHECKING:
    from tqdm import tqdm

VIDSITU_FPS = 30.0
LVU_FPS = 15.0
ROLE_NAMES = {"Arg0": "Arg0 (agent)", "Arg1": "Arg1 (patient)", "AScn": "Scene of the Event",
              "ALoc": "ArgM (location)"}
VARIANTS = {"circle": "ball", "square": "box", "triangle": "cone", "diamond": "gem"}
# the world's parameters and each clip's event groups (plain / predictable / label_only): not
# part of the VidSitu release, a ground truth only a synthetic world has
EVENT_GROUPS = "synth_event_groups.json"


def clip_id(idx: int) -> str:
    return f"v_synth{idx:06d}_seg_0_10"


def _rng(seed: int, idx: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, idx, stream])


def _render_vidsitu_clip(args: tuple[str, int, int, int, w.World]) -> None:
    path, seed, idx, size, world = args
    rng = _rng(seed, idx)
    events = w.sample_script(rng, world=world)
    frames = np.concatenate([render_event(e, int(2 * VIDSITU_FPS), size, rng) for e in events])
    write_video(Path(path), frames, VIDSITU_FPS)


def _phrase(p: str, variant: bool) -> str:
    colour, shape = p.split(" ")
    return f"{colour} {VARIANTS[shape]}" if variant else p


def _record(events: list[w.Event], idx: int, rng: np.random.Generator, noisy: bool) -> dict:
    """One annotator's Ev1..Ev5 record (record 0 of a clip is the truth)."""
    cast = sorted({p for e in events for p in (e.agent, e.patient)})
    variant = {p: noisy and rng.random() < 0.25 for p in cast}  # consistent per annotator
    rec = {}
    for k, e in enumerate(events):
        verb = e.verb
        if noisy and rng.random() < 0.15:
            verb = w.CONFUSABLE[verb]
        roles = {"Arg0": _phrase(e.agent, variant[e.agent]),
                 "Arg1": _phrase(e.patient, variant[e.patient]), "AScn": e.scene,
                 "ALoc": e.side}
        ev = {"vid_uid": f"v_synth{idx:06d}", "vid_seg_int": clip_id(idx), "Verb": verb,
              "VerbID": f"{verb}.01",
              "Arg_List": {ROLE_NAMES[r]: str(j) for j, r in enumerate(roles)},
              "Args": {ROLE_NAMES[r]: phrase for r, phrase in roles.items()}}
        if k != 2:
            rel = w.relation(e, events[2], before=k < 2)
            if noisy and rng.random() < 0.15:
                rel = str(rng.choice(w.RELATIONS))
            ev["EvRel"] = rel
        rec[f"Ev{k + 1}"] = ev
    return rec


def _vinfo(idx: int) -> dict:
    return {"vid_uid": f"v_synth{idx:06d}", "genres": [], "duration": 10.0,
            "name": f"synth{idx:06d}", "text": "", "start": 0, "end": 10,
            "vid_seg_int": clip_id(idx), "movie_name": "synthetic", "upload_year": 2026,
            "clip_name": f"synthetic clip {idx}", "imdb_id": "", "year_rel": 2026}


def write_vidsitu(root: str | Path, n_train: int, n_valid: int, *, seed: int = 0,
                  size: int = 112, workers: int = 2, render: bool = True,
                  world: w.World = w.ORIGINAL, bar: tqdm | None = None) -> None:
    """Clips in `root/vsitu_video_trimmed_dir`, annotations in `root/vidsitu_annotations`
    (only the annotations when `render` is false), and each event's group (`EVENT_GROUPS`)."""
    root = Path(root)
    ann = root / "vidsitu_annotations"
    for sub in ("split_files", "vinfo_files", "vseg_ann_files"):
        (ann / sub).mkdir(parents=True, exist_ok=True)
    splits = {"train": range(n_train), "valid": range(n_train, n_train + n_valid)}
    groups = {}
    for split, ids in splits.items():
        vinfo, records = [], []
        for idx in ids:
            events = w.sample_script(_rng(seed, idx), world=world)  # as the video shows
            groups[clip_id(idx)] = [w.event_group(e) for e in events]
            arng = _rng(seed, idx, 1)
            info = _vinfo(idx)
            if split == "train":
                records.append(_record(events, idx, arng, noisy=True))
            else:
                records += [_record(events, idx, arng, noisy=r > 0) for r in range(3)]
                votes = {}
                for k, e in enumerate(events):
                    said = [e.verb if arng.random() < 0.75 else
                            (w.CONFUSABLE[e.verb] if arng.random() < 0.6
                             else str(arng.choice(w.VERB_LIST))) for _ in range(10)]
                    votes[f"Ev{k + 1}"] = said
                info["vb_lst"] = votes
                info["vbid_lst"] = {k: [f"{v}.01" for v in vs] for k, vs in votes.items()}
                info["vb_to_use"] = {k: vs[0] for k, vs in votes.items()}
            vinfo.append(info)
        (ann / "split_files" / f"vseg_split_{split}_lb.json").write_text(
            json.dumps([clip_id(i) for i in ids]))
        (ann / "vinfo_files" / f"vinfo_{split}_lb.json").write_text(json.dumps(vinfo))
        (ann / "vseg_ann_files" / f"vsann_{split}_lb.json").write_text(json.dumps(records))
    (ann / EVENT_GROUPS).write_text(json.dumps({"world": asdict(world), "groups": groups}))
    if render:
        clips = root / "vsitu_video_trimmed_dir"
        jobs = [(str(clips / f"{clip_id(i)}.mp4"), seed, i, size, world)
                for ids in splits.values() for i in ids]  # a clip on disk is complete: kept
        _run(_render_vidsitu_clip, [j for j in jobs if not Path(j[0]).exists()], workers, bar)


# pool clips draw from their own seeds: VidSitu clips use 0.., LVU clips 10**6 + idx
POOL_START = 2 * 10**6


def write_pool(folder: str | Path, n: int, *, seed: int = 0, size: int = 112,
               workers: int = 2, world: w.World = w.ORIGINAL, bar: tqdm | None = None) -> None:
    """`n` unlabelled clips of the same world as `write_vidsitu`'s (the role MovieClips plays
    for the paper: movie video without labels), as `folder/pool{i:06d}.mp4`; no annotations.
    Clips already rendered are kept, so a larger pool extends a smaller one."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"pool{i:06d}.mp4"), seed, POOL_START + i, size, world)
            for i in range(n)]
    _run(_render_vidsitu_clip, [j for j in jobs if not Path(j[0]).exists()], workers, bar)


# action clips (the Kinetics role) draw from their own seeds too
ACTION_START = 4 * 10**6
ACTION_SPLITS = ("train", "val", "test")
# the verb each motion is rendered as (a look-alike pair shares one motion)
MOTION_VERB = {m: next(v for v in w.VERB_LIST if w.VERBS[v] == m) for m in w.MOTIONS}


def _action_clip(seed: int, idx: int) -> tuple[w.Event, str, int, int]:
    """One trimmed action: a motion of the world by two actors on a scene, 2-4 s long (its
    tempo follows the length), and the clip's fictional source video id and start second."""
    rng = _rng(seed, ACTION_START + idx)
    agent, patient = w.sample_cast(rng, 2)
    motion = str(rng.choice(w.MOTIONS))
    flip = bool(rng.random() < 0.5)
    event = w.Event(MOTION_VERB[motion], agent, patient, str(rng.choice(w.SCENES)), flip,
                    "right side" if flip else "left side")
    return event, motion, int(rng.integers(2, 5)), int(rng.integers(0, 600))


def action_name(seed: int, idx: int) -> tuple[str, str, int, int]:
    """(label, youtube_id, time_start, time_end) of action clip `idx`, as Kinetics lists it."""
    _, motion, duration, start = _action_clip(seed, idx)
    return motion, f"sy{idx:09d}", start, start + duration  # 11 characters, as YouTube's ids


def _render_action_clip(args: tuple[str, int, int, int]) -> None:
    path, seed, idx, size = args
    event, _, duration, _ = _action_clip(seed, idx)
    rng = _rng(seed, ACTION_START + idx, 1)
    write_video(Path(path), render_event(event, int(duration * VIDSITU_FPS), size, rng),
                VIDSITU_FPS)


def write_actions(root: str | Path, n_train: int, n_val: int, n_test: int = 0, *,
                  seed: int = 0, size: int = 112, workers: int = 2,
                  bar: tqdm | None = None) -> None:
    """The role Kinetics-400 plays for level 1: short clips, each one motion of the world by
    actors on a scene drawn at random (no story, no cut-aways), in the official downloader's
    layout (`hiermovie.datasets.kinetics`): `root/annotations/{split}.csv` and flat
    `root/{split}/{youtube_id}_{start:06d}_{end:06d}.mp4`. Clips on disk are kept."""
    from hiermovie.datasets.kinetics import clip_name

    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    jobs, first = [], 0
    for split, n in zip(ACTION_SPLITS, (n_train, n_val, n_test), strict=True):
        lines = ["label,youtube_id,time_start,time_end,split"]
        for idx in range(first, first + n):
            label, yid, start, end = action_name(seed, idx)
            lines.append(f"{label},{yid},{start},{end},{split}")
            path = root / split / f"{clip_name(yid, start, end)}.mp4"
            if not path.exists():
                jobs.append((str(path), seed, idx, size))
        first += n
        if n:
            (root / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")
    _run(_render_action_clip, jobs, workers, bar)


def event_groups(root: str | Path) -> dict[str, list[str]] | None:
    """Each clip's event groups if `root` was written by `write_vidsitu`, else None."""
    path = Path(root) / "vidsitu_annotations" / EVENT_GROUPS
    return json.loads(path.read_text())["groups"] if path.exists() else None


def _lvu_clip(seed: int, idx: int) -> tuple[list[w.Event], list[str], int]:
    rng = _rng(seed, 10**6 + idx)
    n_events = int(rng.integers(15, 46))  # 30 to 90 s
    cast = w.sample_cast(rng)
    scenes = [str(rng.choice(w.SCENES)) for _ in range((n_events + 4) // 5) for _ in range(5)]
    events = w.sample_script(rng, n_events, cast=cast, scenes=scenes[:n_events])
    return events, cast, int(rng.integers(0, 9))


def lvu_id(idx: int) -> str:
    return f"synthlvu{idx:05d}"


def _render_lvu_clip(args: tuple[str, int, int, int]) -> None:
    root, seed, idx, size = args
    events, _, year = _lvu_clip(seed, idx)
    rng = _rng(seed, 10**6 + idx, 2)
    tint = w.YEAR_TINTS[year]
    frames = (f for e in events for f in render_event(e, int(2 * LVU_FPS), size, rng, tint))
    write_video(Path(root) / "lvu_videos" / f"{lvu_id(idx)}.mp4", frames, LVU_FPS)


def write_lvu(root: str | Path, n_clips: int, *, seed: int = 0, size: int = 112,
              workers: int = 2, render: bool = True, bar: tqdm | None = None) -> None:
    """Long clips in `root/lvu_videos`, labels in `root/lvu_1.0/{task}/{train,val,test}.csv`
    (`render=False`: the labels only)."""
    root = Path(root)
    labels = []
    for idx in range(n_clips):
        events, cast, year = _lvu_clip(seed, idx)
        labels.append(w.long_labels(events, cast, year, _rng(seed, 10**6 + idx, 3)))
    parts = {"train": range(0, int(n_clips * 0.6)),
             "val": range(int(n_clips * 0.6), int(n_clips * 0.8)),
             "test": range(int(n_clips * 0.8), n_clips)}
    for task in (*w.LVU_CLASSES, "like_ratio", "view_count"):
        d = root / "lvu_1.0" / task
        d.mkdir(parents=True, exist_ok=True)
        for split, ids in parts.items():
            if task == "like_ratio":
                lines = ["like dislike youtube_id imdb_id"] + [
                    f"{labels[i][task][0]} {labels[i][task][1]} {lvu_id(i)} tt{i:07d}"
                    for i in ids]
            elif task == "view_count":
                lines = ["view_count youtube_id imdb_id"] + [
                    f"{labels[i][task]} {lvu_id(i)} tt{i:07d}" for i in ids]
            else:
                names = w.LVU_CLASSES[task]
                lines = ["class_id class_name youtube_id imdb_id"] + [
                    f"{labels[i][task]} {names[labels[i][task]]} {lvu_id(i)} tt{i:07d}"
                    for i in ids]
            (d / f"{split}.csv").write_text("\n".join(lines) + "\n")
    if render:
        _run(_render_lvu_clip, [(str(root), seed, i, size) for i in range(n_clips)], workers, bar)


def _run(fn: Callable[[Any], None], jobs: list, workers: int, bar: tqdm | None) -> None:
    """Render `jobs`; the caller's progress bar (the job's: it owns the display) grows by
    their number and advances with each clip."""
    if bar is not None:  # redrawn at its next update
        bar.total = (bar.total or 0) + len(jobs)
    done = (lambda: None) if bar is None else bar.update
    if workers <= 1:
        for j in jobs:
            fn(j)
            done()
        return
    with ProcessPoolExecutor(workers) as pool:
        for _ in pool.map(fn, jobs, chunksize=4):
            done()
