"""`hiermovie extract`: Ray workers decode clips, run a frozen backbone and fill a Zarr store.

- `config`: `ExtractConfig` and what is derived from it (the plan chosen for the input, the
  store's identity, tokens per segment, part size);
- `job`: `run_extract`, from the input to the model actors and the store's lease;
- `scheduler`: the loop, decode tasks -> model actors -> the shard writer thread;
- `report`: what happened to each video, the run log and the exit code.
"""

from hiermovie.workflows.extract.config import ExtractConfig
from hiermovie.workflows.extract.job import run_extract, start_local_ray

__all__ = ["ExtractConfig", "run_extract", "start_local_ray"]
