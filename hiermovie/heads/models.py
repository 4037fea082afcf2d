"""VidSitu's verb and relation heads on per-event features, for several seeds at once."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hiermovie.datasets.vidsitu import CENTRE_EVENT, RELATED_EVENTS
from hiermovie.heads.fit import StackedMLP


class VidSituHeads(nn.Module):
    """Verb head (one event's feature -> verb) and relation head (an event and Ev3 -> their
    relation), each an MLP in -> hidden -> classes (VidSitu's) or a linear probe. `hidden` is
    given, not derived from the input, so rows with narrower inputs get heads of the same
    capacity."""

    def __init__(self, seeds: Sequence[int], in_dim: int, hidden: int, verbs: int,
                 relations: int, kind: str = "mlp") -> None:
        super().__init__()
        self.verb = StackedMLP(seeds, in_dim, hidden, verbs, kind)
        self.rel = StackedMLP([s + 10_000 for s in seeds], in_dim, hidden, relations, kind,
                              pair=True)

    def forward(self, ev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ev [M, B, 5, F] -> verb logits [M, B, 5, V], relation logits [M, B, 4, R]."""
        centre = ev[:, :, CENTRE_EVENT:CENTRE_EVENT + 1]
        return self.verb(ev), self.rel(ev[:, :, list(RELATED_EVENTS)], centre)


def head_loss(verb_logits: torch.Tensor, rel_logits: torch.Tensor, verbs: torch.Tensor,
              relations: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
    """Cross-entropy of the trained tasks only, averaged per member and summed over members."""
    m = verb_logits.shape[0]
    loss = verb_logits.new_zeros(())
    if "verb" in tasks:
        loss = loss + nn.functional.cross_entropy(verb_logits.flatten(0, 2),
                                                  verbs.flatten()) * m
    if "relation" in tasks:
        loss = loss + nn.functional.cross_entropy(rel_logits.flatten(0, 2),
                                                  relations.flatten()) * m
    return loss
