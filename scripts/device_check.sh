#!/usr/bin/env bash
# Runs on a lent GPU machine, in the second `run` call (BENCHMARKS.md, "GPU runs"): unpacks
# the two parts of scripts/device_bundle.sh, runs the GPU tests and the extraction benchmark,
# and writes what they print to $OUT (to runs/gpu/ where $OUT is not set).
set -euo pipefail
site=/root/hiermovie-site
if [ ! -d "$site" ]; then
    mkdir -p "$site"
    cat /root/hiermovie-part.1 .device/2/part.* | xz -d | tar x -C "$site"
fi
export PYTHONPATH="$site:$PWD"
out=${OUT:-runs/gpu}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_extract.py 2>&1 | tail -15 \
    | tee "$out/gpu_tests.txt"
python3 benchmarks/extract.py --videos "${VIDEOS:-64}" --repeats "${REPEATS:-1}" 2>&1 \
    | grep -v -E "^extract:|WARNING|INFO" | tee "$out/extract_gpu.txt"
