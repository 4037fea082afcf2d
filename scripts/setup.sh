#!/usr/bin/env bash
# Create .venv with hiermovie installed. TORCH picks the torch build: the default is the CPU
# wheel; on a GPU machine use e.g. TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128".
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${TORCH:-torch==2.13.0}
[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }
pip $TORCH
pip -e ".[test,s3]"
.venv/bin/python -c "import torch, decord, zarr, hiermovie; print('hiermovie', hiermovie.__version__, '| torch', torch.__version__, '| zarr', zarr.__version__)"
