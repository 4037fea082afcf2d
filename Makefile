.PHONY: setup demo test lint bench
PY := .venv/bin/python

setup:
	scripts/setup.sh

# The main job on the embedded default: synthetic clips -> extract (local Ray, local Zarr).
demo: setup
	.venv/bin/hiermovie demo --workdir runs/demo

test: setup
	.venv/bin/ruff check hiermovie tests benchmarks
	$(PY) -m pytest -q

lint:
	.venv/bin/ruff check hiermovie tests benchmarks
