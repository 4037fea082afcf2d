"""The probe's rows: which contextualizer each one evaluates, and how its events are read
(`EventFeatures`, shared by the VidSitu and LVU probes).

Every random row has exactly the shape of the pretrained contextualizer (or, without one, the
`model` section of the config), and one initialisation (seed 1234) shared by all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from hiermovie.config import ConfigError
from hiermovie.contextualizer.readout import Readout, read_out

if TYPE_CHECKING:
    from hiermovie.datasets.labelled import Clips

Mode = Literal["frozen", "selfonly", "finetune"]

# row -> (title, which contextualizer, how it is evaluated)
ROWS: dict[str, tuple[str, str, Mode]] = {
    "backbone": ("Backbone features alone", "", "frozen"),
    "random_frozen": ("Random contextualizer, frozen", "random", "frozen"),
    "random_selfonly": ("Random contextualizer, self-only attention, frozen (capacity control)",
                        "random", "selfonly"),
    "scratch": ("Contextualizer trained from scratch with the heads", "random", "finetune"),
    "pretrained_frozen": ("Pretrained contextualizer, frozen", "pretrained", "frozen"),
    "pretrained": ("Pretrained contextualizer, fine-tuned with the heads", "pretrained",
                   "finetune"),
    "positive_control": ("Label-trained contextualizer, frozen (positive control)", "control",
                         "frozen"),
}
RANDOM_SEED = 1234


@dataclass
class Row:
    name: str
    ctx: torch.nn.Module | None  # None: backbone features alone
    mode: Mode

    @property
    def title(self) -> str:
        return ROWS[self.name][0]


def default_rows(pretrained: bool, control: bool, finetune: bool = True) -> list[str]:
    have = {"": True, "random": True, "pretrained": pretrained, "control": control}
    return [r for r, (_, src, mode) in ROWS.items()
            if have[src] and (finetune or mode != "finetune")]


def build_rows(names: list[str], contextualizer: str, positive_control: str,
               shape: dict, dim: int, tokens: int, finetune: bool = True) -> list[Row]:
    """The rows asked for (or every row the given folders allow), each with its module."""
    from hiermovie.contextualizer import Contextualizer, ContextualizerConfig, load_contextualizer

    names = names or default_rows(bool(contextualizer), bool(positive_control), finetune)
    if not finetune and (bad := [n for n in names if ROWS[n][2] == "finetune"]):
        raise ConfigError(f"rows: {', '.join(bad)} fine-tune the contextualizer with VidSitu's "
                          "heads; this probe evaluates frozen rows only")
    loaded = {"pretrained": contextualizer, "control": positive_control}
    need = {ROWS[n][1] for n in names}
    for src, flag in (("pretrained", "contextualizer"), ("control", "positive_control")):
        if src in need and not loaded[src]:
            rows = [n for n in names if ROWS[n][1] == src]
            raise ConfigError(f"{flag}: needed for the row(s) {', '.join(rows)}")
    models = {src: load_contextualizer(path).eval() for src, path in loaded.items()
              if path and src in need | ({"pretrained"} if "random" in need else set())}
    for src, m in models.items():
        if m.config.in_dim != dim:
            raise ConfigError(f"{'contextualizer' if src == 'pretrained' else 'positive_control'}"
                              f": reads {m.config.in_dim}-d features, the store has {dim}-d")
    if "random" in need:
        cfg = (ContextualizerConfig.from_dict(models["pretrained"].config.to_dict())
               if "pretrained" in models else
               ContextualizerConfig(in_dim=dim, tokens_per_segment=tokens, **shape))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            models["random"] = Contextualizer(cfg).eval()
    return [Row(n, models[ROWS[n][1]] if ROWS[n][1] else None, ROWS[n][2]) for n in names]


def head_hidden(rows: list[Row], dim: int, hidden: int, readout: Readout,
                concat_own: bool) -> int:
    """The heads' hidden width: `hidden`, or half the widest row's input (its event features:
    the `dim`-d backbone feature and/or the read-out, two layers' worth for `infill`)."""
    width = max((r.ctx.config.width for r in rows if r.ctx is not None), default=0)
    out = width * (2 if readout == "infill" else 1)
    widest = max(dim, dim + out if concat_own else out)
    return hidden or max(1, widest // 2)


@dataclass(frozen=True)
class EventFeatures:
    """How a row's events become the heads' input: the standardised pooled backbone feature,
    next to (or, without `concat_own`, replaced by) the contextualizer's read-out of that event
    (`contextualizer.read_out`). The contextualizer reads the first `ctx_dim` channels (the
    rest: a fused store's)."""

    mean: torch.Tensor  # [D] of the training clips' pooled features
    std: torch.Tensor
    ctx_dim: int
    readout: Readout = "last"
    concat_own: bool = True

    @classmethod
    def standardising(cls, pooled: torch.Tensor, ctx_dim: int, readout: Readout = "last",
                      concat_own: bool = True) -> EventFeatures:
        """Mean and std over every pooled segment feature [..., D] given."""
        flat = pooled.reshape(-1, pooled.shape[-1])
        return cls(flat.mean(0), flat.std(0) + 1e-6, ctx_dim, readout, concat_own)

    def __call__(self, row: Row, ctx: torch.nn.Module | None, raw: torch.Tensor,
                 start_s: torch.Tensor | None) -> torch.Tensor:
        """raw [B, S, K, D], segment start times [B, S] -> event features [B, S, F]."""
        own = (raw.mean(2) - self.mean) / self.std
        if ctx is None:
            return own
        h = read_out(ctx, raw[..., :self.ctx_dim], start_s, self_only=row.mode == "selfonly",
                     readout=self.readout)
        return torch.cat([own, h], dim=-1) if self.concat_own else h

    @torch.no_grad()
    def frozen(self, row: Row, ctx: torch.nn.Module | None, clips: Clips,
               chunk: int = 512) -> torch.Tensor:
        """Event features of `clips` [N, S, F], in chunks, without gradients."""
        return torch.cat([self(row, ctx, clips.features[i:i + chunk],
                               clips.start_s[i:i + chunk])
                          for i in range(0, len(clips), chunk)])
