#!/usr/bin/env bash
# Packs what the lent GPU machines' image lacks for extraction into .device/ (git-ignored), as
# two parts that each fit one `run` call's 64 MiB carry. That image has Python 3.12 with torch,
# torchvision, transformers, h5py, scikit-learn and pytest, but no Ray, Zarr, numcodecs,
# decord2 or PyAV, and no network. Versions are this checkout's .venv's. How to use the parts:
# BENCHMARKS.md, "GPU runs".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
names='ray|zarr|numcodecs|donfig|google-crc32c|decord2|av|jsonschema|referencing|jsonschema-specifications|rpds-py|scikit-video'
pins=$($PY -m pip list --format=freeze 2>/dev/null | grep -i -E "^($names)==")
out=.device
rm -rf "$out" && mkdir -p "$out/site" "$out/1" "$out/2"
# shellcheck disable=SC2086
$PY -m pip install -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --target "$out/site" $pins
# Ray libraries hiermovie never imports (extract was run with them removed)
rm -rf "$out"/site/ray/{rllib,serve,jars,llm,tune,train,workflow}
find "$out/site" -name __pycache__ -prune -exec rm -rf {} +
# decord2 and PyAV bundle some identical FFmpeg libraries: a hard link is stored once by tar
$PY - "$out/site" <<'PYEOF'
import hashlib, os, sys
seen = {}
for root, _, files in os.walk(sys.argv[1]):
    for f in sorted(files):
        p = os.path.join(root, f)
        if os.path.islink(p) or os.path.getsize(p) < 1 << 20:
            continue
        digest = hashlib.sha256(open(p, "rb").read()).hexdigest()
        if digest in seen:
            os.remove(p)
            os.link(seen[digest], p)
        seen.setdefault(digest, p)
PYEOF
tar cf - -C "$out/site" . | xz -T0 -9 | split -b 40M - "$out/part."
parts=("$out"/part.*)
[ ${#parts[@]} -eq 2 ] || { echo "expected 2 parts, got ${#parts[@]}" >&2; exit 1; }
mv "${parts[0]}" "$out/1/" && mv "${parts[1]}" "$out/2/" && rm -rf "$out/site"
du -sh "$out"/1 "$out"/2
