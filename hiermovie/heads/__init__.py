"""Task heads and their metrics: they read features (never video) and score predictions.

- `models`: `VidSituHeads` (verb and relation MLPs over event features) and `head_loss`;
- `fit`: `StackedMLP` (several seeds' heads trained as one batched model) and `fit`;
- `srl`: `RoleGenerator`, the semantic-role decoder, and `target_text`;
- `vidsitu_metrics`: VidSitu's verb, relation and role metrics, equal to the official
  evaluator's; `coref`: LEA;
- `vidsitu`: one seed's predictions scored (`score_events`, `score_roles`: the role decoder
  trained, generating and scored);
- `lvu`: LVU's window heads (`WindowHead`) and official scores.
"""

from hiermovie.lazy import lazy_exports

_WHERE = {"VidSituHeads": "models", "head_loss": "models", "StackedMLP": "fit", "fit": "fit",
          "RoleGenerator": "srl", "target_text": "srl", "WindowHead": "lvu",
          "score_events": "vidsitu", "score_roles": "vidsitu"}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
