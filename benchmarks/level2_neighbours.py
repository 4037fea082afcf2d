"""Is a hidden event's verb in its neighbours' *backbone features*? (The diagnosis behind
BENCHMARKS.md "Level 2 in the story world".)

    .venv/bin/python benchmarks/level2_neighbours.py --work runs/level2-s0

On a level2.py run's labelled store: a logistic-regression verb probe on each event's own
feature, and on its own feature concatenated with its two neighbours' (zeros at the clip's
ends), trained on every training clip's first annotation and scored per event group against
the validation clips' true verbs. The gap on "predictable" (hidden) events is what a
contextualizer could add with these features and this many labels; the world's ceiling from
perfect perception is printed beside it.

Then what the mask objective asks for: the share of its target's variance (each event's
feature, normalised as `targets()` does) common to the clip, and of the within-clip rest the
share explained by the event's group alone and by its group and verb (means of the training
clips' residuals, R^2 on the validation clips'), per event group. The difference is what of
the target depends on the verb.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from hiermovie.contextualizer import targets
from hiermovie.datasets import synth_world as w
from hiermovie.datasets.synth import event_groups
from hiermovie.datasets.vidsitu import VidSitu
from hiermovie.feature_store import FeatureStore


def features(store: FeatureStore, clips: list[str], neighbours: bool) -> np.ndarray:
    x = np.stack([store.get(c).astype(np.float32).mean(1) for c in clips])  # [N, 5, D]
    if neighbours:
        z = np.zeros_like(x[:, :1])
        x = np.concatenate([x, np.concatenate([z, x[:, :-1]], 1),
                            np.concatenate([x[:, 1:], z], 1)], -1)
    return x.reshape(-1, x.shape[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    work = Path(a.work)
    root = work / "synth"
    store = FeatureStore(str(work / "labelled.zarr"))
    train, valid = VidSitu(root, "train"), VidSitu(root, "valid")
    groups = event_groups(root)
    tr, va = train.clips, valid.clips
    y_tr = np.array([v for c in tr for v in train.verbs(c)])
    y_va = np.array([v for c in va for v in valid.verbs(c)])
    g_va = np.array([g for c in va for g in groups[c]])
    print(f"{len(tr)} training clips, {len(va)} validation clips")
    for neighbours in (False, True):
        scaler = StandardScaler().fit(features(store, tr, neighbours))
        clf = LogisticRegression(max_iter=2000, C=0.1).fit(
            scaler.transform(features(store, tr, neighbours)), y_tr)
        right = clf.predict(scaler.transform(features(store, va, neighbours))) == y_va
        print(("own + neighbours" if neighbours else "own feature     ") + ": " + ", ".join(
            f"{g} {100 * right[g_va == g].mean():.1f}" for g in w.GROUPS if (g_va == g).any())
            + f"; all {100 * right.mean():.1f}")
    g_tr = np.array([g for c in tr for g in groups[c]])
    target_shares(store, tr, va, y_tr, y_va, g_tr, g_va)
    c = w.neighbour_ceiling(w.STORY)
    print("ceiling (perfect perception), own / with neighbours: " + ", ".join(
        f"{g} {100 * c['own'][g]:.0f} / {100 * c['with_neighbours'][g]:.0f}" for g in c["own"]))


def target_shares(store: FeatureStore, tr: list[str], va: list[str], y_tr: np.ndarray,
                  y_va: np.ndarray, g_tr: np.ndarray, g_va: np.ndarray) -> None:
    def residuals(clips: list[str]) -> tuple[np.ndarray, float]:
        x = torch.from_numpy(np.stack([store.get(c).astype(np.float32) for c in clips]))
        t = targets(x).numpy()  # [N, 5, D]
        clip_mean = t.mean(1, keepdims=True)
        shared = ((clip_mean - t.mean((0, 1))) ** 2).sum() * t.shape[1]
        total = ((t - t.mean((0, 1))) ** 2).sum()
        r = t - clip_mean
        return r.reshape(-1, r.shape[-1]), float(shared / total)

    r_tr, share_tr = residuals(tr)
    r_va, share_va = residuals(va)
    def explained(keys_tr: list, keys_va: list, group: str) -> float:
        """R^2 on the validation events of `group` of the training residuals' mean per key."""
        means = {k: r_tr[[j == k for j in keys_tr]].mean(0) for k in set(keys_tr)}
        fit = np.stack([means.get(k, np.zeros(r_va.shape[1])) for k in keys_va])
        at = g_va == group
        return float(1 - ((r_va - fit)[at] ** 2).sum() / (r_va[at] ** 2).sum())

    by_group = list(g_tr), list(g_va)
    by_verb = list(zip(g_tr, y_tr, strict=True)), list(zip(g_va, y_va, strict=True))
    print(f"mask target: clip-shared share {share_tr:.2f} (training clips) / {share_va:.2f} "
          "(validation); of the within-clip rest, R^2 of the event's group alone / of group "
          "and verb: " + ", ".join(
              f"{g} {explained(*by_group, g):.2f} / {explained(*by_verb, g):.2f}"
              for g in w.GROUPS if (g_va == g).any()))


if __name__ == "__main__":
    main()
