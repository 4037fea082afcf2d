"""Task heads and their metrics: they read features (never video) and score predictions.

- `models`: `VidSituHeads` (verb and relation MLPs over event features) and `head_loss`;
- `fit`: `StackedMLP` (several seeds' heads trained as one batched model) and `fit`;
- `srl`: `RoleGenerator`, the semantic-role decoder, and `target_text`;
- `vidsitu_metrics`: VidSitu's verb, relation and role metrics, equal to the official
  evaluator's; `coref`: LEA;
- `lvu`: LVU's window heads (`WindowHead`) and official scores.
"""

from hiermovie.lazy import lazy_exports

_WHERE = {"VidSituHeads": "models", "head_loss": "models", "StackedMLP": "fit", "fit": "fit",
          "RoleGenerator": "srl", "target_text": "srl", "WindowHead": "lvu"}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
