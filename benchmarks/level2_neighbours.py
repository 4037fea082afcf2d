"""Is a hidden event's verb in its neighbours' *backbone features*? (The diagnosis behind
BENCHMARKS.md "Level 2 in the story world".)

    .venv/bin/python benchmarks/level2_neighbours.py --work runs/level2-s0

On a level2.py run's labelled store: a logistic-regression verb probe on each event's own
feature, and on its own feature concatenated with its two neighbours' (zeros at the clip's
ends), trained on every training clip's first annotation and scored per event group against
the validation clips' true verbs. The gap on "predictable" (hidden) events is what a
contextualizer could add with these features and this many labels; the world's ceiling from
perfect perception is printed beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

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
    c = w.neighbour_ceiling(w.STORY)
    print("ceiling (perfect perception), own / with neighbours: " + ", ".join(
        f"{g} {100 * c['own'][g]:.0f} / {100 * c['with_neighbours'][g]:.0f}" for g in c["own"]))


if __name__ == "__main__":
    main()
