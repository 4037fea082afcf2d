"""`hiermovie pretrain-ctx`: mask-prediction pretraining of the contextualizer from a store.

- `config`: `PretrainCtxConfig`;
- `data`: the selected videos of the stores, a stable held-out split, sequences;
- `eval`: the loss on a batch and the validation loss;
- `job`: `run_pretrain_ctx`, the training loop.
"""

from hiermovie.workflows.pretrain_ctx.config import PretrainCtxConfig
from hiermovie.workflows.pretrain_ctx.job import run_pretrain_ctx

__all__ = ["PretrainCtxConfig", "run_pretrain_ctx"]
