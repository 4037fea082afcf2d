"""`hiermovie probe`: train task heads on frozen features and print the paper-style table.

Rows are (backbone, contextualizer): none (backbone features alone), random (an untrained
contextualizer of the same shape, frozen) and pretrained (the mask-pretrained one, frozen).
Each row trains the VidSitu heads for several seeds and reports mean +- std of the official
metrics on the validation clips that have features.
"""

from __future__ import annotations

import copy
import json
import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hiermovie.config import ConfigError, opt
from hiermovie.datasets.vidsitu import EVENTS, RELATION_PAIRS, RELATIONS, VidSitu, verb_vocab
from hiermovie.feature_store import FeatureStore
from hiermovie.heads import vidsitu_metrics as vm
from hiermovie.heads.models import (
    ClipModel,
    RelationHead,
    mlp_or_linear,
    train_classifier,
    train_clip_model,
)
from hiermovie.heads.srl import RoleGenerator, target_text
from hiermovie.workflows.tables import cell, spread

COLUMNS = {  # metric key -> column title, in the paper's order
    "verb/Per_Ev_Top_1": "Verb Acc@1", "verb/Per_Ev_Top_5": "Verb Acc@5",
    "verb/recall_macro_1_th_9": "Verb Rec@5",
    "relation/Macro_Top_1": "Rel mean acc", "relation/Top_1": "Rel top-1",
    "roles/cider": "CIDEr", "roles/MacroVb_cider": "CIDEr-verb",
    "roles/MacroArg_cider": "CIDEr-arg", "roles/rouge": "ROUGE-L", "roles/lea": "LEA",
}
ROW_NAMES = {"none": "None", "random": "Random init", "pretrained": "Mask prediction"}


@dataclass
class ProbeConfig:
    data: str = opt("", "vidsitu:ROOT (the annotations and clips)")
    store: str = opt("", "feature store of the clips")
    fuse_store: str = opt("", "a second store (e.g. imported object features) whose per-segment "
                          "features are concatenated to the heads' input, as in the paper's "
                          "Object transformer ++ row; the contextualizer still sees `store`'s")
    contextualizer: str = opt("", "folder of a pretrained contextualizer (pretrain-ctx output)")
    rows: list[str] = opt(["none", "random", "pretrained"],
                          "contextualizer rows: none, random, pretrained")
    tasks: list[str] = opt(["verb", "relation", "roles"], "tasks: verb, relation, roles")
    head: Literal["mlp", "linear"] = opt("mlp", "VidSitu-style MLP heads or linear probes")
    ctx_mode: Literal["finetune", "frozen"] = opt(
        "finetune", "fine-tune the contextualizer with the verb/relation heads, or freeze it")
    seeds: int = opt(3, "seeds per row")
    epochs: int = opt(60, "epochs for the verb and relation heads")
    lr: float = opt(1e-3, "learning rate of the heads")
    batch_size: int = opt(64, "batch size of the heads")
    role_epochs: int = opt(15, "epochs of the role decoder")
    out: str = opt("runs/probe", "output folder: table, JSON, chart, prediction files")
    lvu_tasks: list[str] = opt([], "LVU tasks to probe (empty = all nine)")
    lvu_window: int = opt(30, "LVU: segments per window (e.g. 30 two-second segments = 60 s)")
    score: str = opt("", "score this prediction file (.json/.pkl) instead of training")
    score_task: Literal["verb", "relation", "roles"] = opt("verb", "task of --score")
    storage_options: dict = opt({}, "fsspec options for the store")

    def __post_init__(self) -> None:
        bad = set(self.rows) - {"none", "random", "pretrained"}
        if bad:
            raise ValueError(f"rows: unknown row(s) {sorted(bad)}")
        bad = set(self.tasks) - {"verb", "relation", "roles"}
        if bad:
            raise ValueError(f"tasks: unknown task(s) {sorted(bad)}")
        if self.seeds < 1 or self.epochs < 1:
            raise ValueError("seeds and epochs: must be >= 1")


def _data(data: str) -> tuple[str, str]:
    kind, _, root = data.partition(":")
    if kind not in ("vidsitu", "lvu") or not root:
        raise ConfigError("data: expected vidsitu:ROOT or lvu:ROOT")
    return kind, root


def _vidsitu_root(data: str) -> str:
    kind, root = _data(data)
    if kind != "vidsitu":
        raise ConfigError("data: scoring prediction files needs vidsitu:ROOT")
    return root


# --- prediction files ------------------------------------------------------------------------

class _PlainUnpickler(pickle.Unpickler):
    """Leaderboard files are pickled lists of dicts: allow nothing that could run code."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in (
                "scalar", "dtype", "_reconstruct", "ndarray"):
            return getattr(np if module == "numpy" else np.core.multiarray, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a prediction file")


def read_predictions(path: str) -> list[dict[str, Any]]:
    p = Path(path)
    if p.suffix == ".json":
        return json.loads(p.read_text())
    with open(p, "rb") as f:
        return _PlainUnpickler(f).load()


def _score_file(cfg: ProbeConfig) -> int:
    ds = VidSitu(_vidsitu_root(cfg.data), "valid")
    preds = read_predictions(cfg.score)
    try:
        result = vm.SCORERS[cfg.score_task](preds, ds)
    except (KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"score: {cfg.score}: not a {cfg.score_task} prediction file (its "
                          f"entries lack {e}); --score_task picks verb, relation or roles"
                          ) from None
    except ValueError as e:
        raise ConfigError(f"score: {cfg.score}: {e}") from None
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0


# --- features ---------------------------------------------------------------------------------

def _contextualizers(cfg: ProbeConfig, dim: int, k: int) -> dict[str, torch.nn.Module | None]:
    from hiermovie.contextualizer import (
        Contextualizer,
        ContextualizerConfig,
        load_contextualizer,
    )

    rows: dict[str, torch.nn.Module | None] = {}
    pretrained = load_contextualizer(cfg.contextualizer) if cfg.contextualizer else None
    for row in cfg.rows:
        if row == "none":
            rows[row] = None
        elif row == "pretrained":
            if pretrained is None:
                raise ConfigError("contextualizer: needed for the 'pretrained' row")
            rows[row] = pretrained.eval()
        else:
            ccfg = (ContextualizerConfig.from_dict(pretrained.config.to_dict()) if pretrained
                    else ContextualizerConfig(in_dim=dim, tokens_per_segment=k, width=256,
                                              ffn=512, heads=4))
            torch.manual_seed(1234)
            rows[row] = Contextualizer(ccfg).eval()
    return rows


def _raw(store: FeatureStore, clips: list[str]) -> torch.Tensor:
    """[clips, S, K, D] float32 backbone features."""
    return torch.stack([torch.from_numpy(store.get(c).astype(np.float32)) for c in clips])


def _fuse(feats: torch.Tensor, other: FeatureStore, clips: list[str]) -> torch.Tensor:
    """Append `other`'s per-segment features (pooled over its tokens) to every token."""
    missing = [c for c in clips if c not in set(other.videos())]
    if missing:
        raise ConfigError(f"{other.url}: no features for {len(missing)} of the clips "
                         f"(e.g. {missing[0]!r}); fusing needs every clip in both stores")
    extra = _raw(other, clips)
    if extra.shape[1] != feats.shape[1]:
        raise ConfigError(f"{other.url}: {extra.shape[1]} segments per clip, the store has "
                         f"{feats.shape[1]}")
    extra = extra.mean(2, keepdim=True).expand(-1, -1, feats.shape[2], -1)
    return torch.cat([feats, extra], dim=-1)


@torch.no_grad()
def _frozen_events(feats: torch.Tensor, ctx: torch.nn.Module | None, mean: torch.Tensor,
                   std: torch.Tensor, ctx_dim: int) -> torch.Tensor:
    """[clips, 5, F]: the standardised pooled feature, next to the frozen contextualizer's
    output (from the first `ctx_dim` channels) for that event when there is one."""
    own = (feats.mean(2) - mean) / std
    if ctx is None:
        return own
    valid = torch.ones(feats.shape[:2], dtype=torch.bool)
    return torch.cat([own, ctx(feats[..., :ctx_dim], valid)], dim=-1)


# --- one row, one seed ------------------------------------------------------------------------

@dataclass
class Labels:
    verbs: torch.Tensor  # [clips, 5] vocabulary index of each training event's verb
    relations: torch.Tensor  # [clips, 4] relation index of each training pair (record 0)


def training_labels(train: VidSitu, clips: list[str], vocab: list[str]) -> Labels:
    index = {v: i for i, v in enumerate(vocab)}
    rel = {r: i for i, r in enumerate(RELATIONS)}
    return Labels(torch.tensor([[index[v] for v in train.verbs(c)] for c in clips]),
                  torch.tensor([[rel[r[0]] for r in train.relations(c, records=1)]
                                for c in clips]))


def fit_frozen(cfg: ProbeConfig, seed: int, tr: torch.Tensor, va: torch.Tensor, y: Labels,
               vocab: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Separate heads on frozen event features; returns validation verb and relation logits."""
    dim = tr.shape[-1]
    kw = {"epochs": cfg.epochs, "lr": cfg.lr, "batch_size": cfg.batch_size, "seed": seed}
    verb = train_classifier(mlp_or_linear(dim, len(vocab), cfg.head), (tr.flatten(0, 1),),
                            y.verbs.flatten(), **kw)
    pairs = [EVENTS.index(e) for e in RELATION_PAIRS]

    def centre(x: torch.Tensor) -> torch.Tensor:
        return x[:, 2:3].expand(-1, 4, -1).flatten(0, 1)
    rel = train_classifier(RelationHead(dim, len(RELATIONS), cfg.head),
                           (tr[:, pairs].flatten(0, 1), centre(tr)), y.relations.flatten(), **kw)
    with torch.no_grad():
        return (verb(va.flatten(0, 1)).view(len(va), 5, -1),
                rel(va[:, pairs].flatten(0, 1), centre(va)).view(len(va), 4, -1))


def evaluate_row(cfg: ProbeConfig, seed: int, vlog: torch.Tensor, rlog: torch.Tensor,
                 tr_ev: torch.Tensor, va_ev: torch.Tensor, train: VidSitu, valid: VidSitu,
                 tr_clips: list[str], va_clips: list[str], vocab: list[str]
                 ) -> tuple[dict[str, float], dict[str, list]]:
    metrics: dict[str, float] = {}
    preds: dict[str, list] = {}
    if "verb" in cfg.tasks:
        top = vlog.topk(min(5, len(vocab)), dim=-1).indices.tolist()
        per_clip = [[[vocab[j] for j in ev] for ev in clip] for clip in top]
        metrics |= {f"verb/{k}": v for k, v in vm.verb_metrics(
            per_clip, [valid.verb_votes(c) for c in va_clips]).items()}
        preds["verb"] = [{"ann_idx": valid.clips.index(c), "pred_vbs_ev": p}
                         for c, p in zip(va_clips, per_clip, strict=True)]
    if "relation" in cfg.tasks:
        labels = rlog.argmax(-1).tolist()
        # video-only input: the same prediction for each annotation's slot
        per_clip = [[[RELATIONS[j]] * 3 for j in clip] for clip in labels]
        res = vm.relation_metrics(per_clip, [valid.relations(c, records=3) for c in va_clips])
        metrics |= {f"relation/{k}": v for k, v in res.items() if not isinstance(v, dict)}
        preds["relation"] = [{"ann_idx": valid.clips.index(c), "pred_evrels_ev": p}
                             for c, p in zip(va_clips, per_clip, strict=True)]
    if "roles" in cfg.tasks:
        texts = [target_text(r) for c in tr_clips for r in train.roles(c)]
        verbs = [v for c in tr_clips for v in train.verbs(c)]
        gen = RoleGenerator(tr_ev.shape[-1], texts, verbs, seed=seed).fit(
            tr_ev.flatten(0, 1), verbs, texts, epochs=cfg.role_epochs)
        all_refs = vm.srl_references(valid)
        refs = [all_refs[valid.clips.index(c)] for c in va_clips]
        gold = [r[0][ev]["VerbID"] for r in refs for ev in EVENTS]
        roles = gen.predict(va_ev.flatten(0, 1), gold)
        hyps = [{ev: roles[i * 5 + k] for k, ev in enumerate(EVENTS)}
                for i in range(len(va_clips))]
        metrics |= {f"roles/{k}": v for k, v in vm.srl_metrics(hyps, refs).items()}
        preds["roles"] = [{"ann_idx": valid.clips.index(c), "vb_output": h}
                          for c, h in zip(va_clips, hyps, strict=True)]
    return metrics, preds


# --- the job ------------------------------------------------------------------------------------

def run_probe(cfg: ProbeConfig) -> int:
    """Train heads on frozen features for each contextualizer row and print the table."""
    if cfg.score:
        return _score_file(cfg)
    if not cfg.store:
        raise ConfigError("store: required (a store written by `hiermovie extract`)")
    kind, root = _data(cfg.data)
    if kind == "lvu":
        from hiermovie.workflows.probe_lvu import run_lvu

        return run_lvu(cfg, root)
    t0 = time.time()
    train, valid = VidSitu(root, "train"), VidSitu(root, "valid")
    store = FeatureStore(cfg.store, storage_options=cfg.storage_options or None)
    have = set(store.videos())
    tr_clips = [c for c in train.clips if c in have and c in train.records]
    va_clips = [c for c in valid.clips if c in have and c in valid.records]
    coverage = {"train": train.coverage(have), "valid": valid.coverage(have)}
    if not tr_clips or not va_clips:
        raise ConfigError(f"{cfg.store}: no features for the VidSitu clips of {root} "
                         f"(coverage {coverage})")
    vocab = verb_vocab(train)
    prov = store.provenance
    rows = _contextualizers(cfg, prov.dim, prov.tokens_per_segment)
    results: dict[str, dict[str, list[float]]] = {}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tr_raw = _raw(store, tr_clips)
    va_raw = _raw(store, va_clips)
    if cfg.fuse_store:
        fused = FeatureStore(cfg.fuse_store, storage_options=cfg.storage_options or None)
        tr_raw, va_raw = _fuse(tr_raw, fused, tr_clips), _fuse(va_raw, fused, va_clips)
    pooled = tr_raw.mean(2)
    mean, std = pooled.mean((0, 1)), pooled.std((0, 1)) + 1e-6
    y = training_labels(train, tr_clips, vocab)
    for row, ctx in rows.items():
        for seed in range(cfg.seeds):
            if cfg.ctx_mode == "finetune":
                model = ClipModel(tr_raw.shape[-1], len(vocab), len(RELATIONS),
                                  copy.deepcopy(ctx) if ctx is not None else None,
                                  ctx.config.width if ctx is not None else 0, mean, std,
                                  cfg.head, ctx_dim=prov.dim)
                train_clip_model(model, tr_raw, y.verbs, y.relations, epochs=cfg.epochs,
                                 lr=cfg.lr, batch_size=cfg.batch_size, seed=seed)
                with torch.no_grad():
                    vlog, rlog = model(va_raw)
                    tr_ev, va_ev = model.events(tr_raw), model.events(va_raw)
            else:
                tr_ev, va_ev = (_frozen_events(tr_raw, ctx, mean, std, prov.dim),
                                _frozen_events(va_raw, ctx, mean, std, prov.dim))
                vlog, rlog = fit_frozen(cfg, seed, tr_ev, va_ev, y, vocab)
            metrics, preds = evaluate_row(cfg, seed, vlog, rlog, tr_ev, va_ev, train, valid,
                                          tr_clips, va_clips, vocab)
            for k, v in metrics.items():
                results.setdefault(row, {}).setdefault(k, []).append(float(v))
            for task, entries in preds.items():
                (out / f"pred_{task}_{row}_seed{seed}.json").write_text(json.dumps(entries))
        print(f"probe: row {row!r} done ({time.time() - t0:.0f} s)")
    backbone = prov.backbone + (f" + `{cfg.fuse_store}` ({tr_raw.shape[-1] - prov.dim}-d, fused)"
                                if cfg.fuse_store else "")
    report = _report(cfg, results, coverage, backbone, out, time.time() - t0)
    print(report)
    return 0


def _report(cfg: ProbeConfig, results: dict[str, dict[str, list[float]]], coverage: dict,
            backbone: str, out: Path, seconds: float) -> str:
    cols = [k for k in COLUMNS if any(k in r for r in results.values())]
    mode = ("fine-tuned with the verb/relation heads" if cfg.ctx_mode == "finetune"
            else "frozen")
    lines = [f"Backbone `{backbone}`; evaluated on {coverage['valid']['available']} of "
             f"{coverage['valid']['annotated']} validation clips, trained on "
             f"{coverage['train']['available']} of {coverage['train']['annotated']} training "
             f"clips; {spread(cfg.seeds)}; {cfg.head} heads, contextualizer {mode}.", "",
             "| Contextualizer | " + " | ".join(COLUMNS[c] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    names = ROW_NAMES
    summary = {}
    for row, metrics in results.items():
        cells = []
        for c in cols:
            cells.append(cell(metrics[c]))
        lines.append(f"| {names[row]} | " + " | ".join(cells) + " |")
        summary[row] = {c: {"mean": float(np.mean(metrics[c])), "std": float(np.std(metrics[c])),
                            "runs": metrics[c]} for c in metrics}
    table = "\n".join(lines)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({
        "config": asdict(cfg), "coverage": coverage, "backbone": backbone,
        "seconds": seconds, "rows": summary}, indent=2))
    _chart(results, cols, out / "results.png")
    return table


def _chart(results: dict[str, dict[str, list[float]]], cols: list[str], path: Path) -> None:
    """One panel per metric family (CIDEr-like scores and percentages do not share an axis),
    the table's row names, error bars over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [(title, [c for c in cols if ("cider" in c) == cider])
                for title, cider in (("accuracy / recall / ROUGE-L / LEA (%)", False),
                                     ("CIDEr (x100)", True))]
    families = [(t, c) for t, c in families if c]
    fig, axes = plt.subplots(1, len(families), squeeze=False, figsize=(
        max(6, 1.2 * len(cols) + 2), 3.8), gridspec_kw={
            "width_ratios": [len(c) for _, c in families]})
    width = 0.8 / max(1, len(results))
    for ax, (title, fam) in zip(axes[0], families, strict=True):
        for i, (row, metrics) in enumerate(results.items()):
            means = [100 * np.mean(metrics[c]) for c in fam]
            stds = [100 * np.std(metrics[c]) if len(metrics[c]) > 1 else 0 for c in fam]
            ax.bar(np.arange(len(fam)) + i * width, means, width, yerr=stds, capsize=2,
                   label=ROW_NAMES.get(row, row))
        ax.set_xticks(np.arange(len(fam)) + width * (len(results) - 1) / 2)
        ax.set_xticklabels([COLUMNS[c] for c in fam], rotation=30, ha="right")
        ax.set_ylabel(title)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, title="contextualizer", loc="upper right", ncol=len(labels),
               fontsize=8, title_fontsize=8)
    seeds = max(len(v) for m in results.values() for v in m.values())
    fig.suptitle(f"Probe results on the validation clips ({seeds} seed"
                 f"{'s, bars: std' if seeds > 1 else ''})", x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    fig.savefig(path, dpi=120)
    plt.close(fig)
