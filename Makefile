.PHONY: setup demo test lint reliability
PY := .venv/bin/python

setup:
	scripts/setup.sh

# The main job on the embedded default: synthetic clips -> extract (local Ray, local Zarr).
demo: setup
	.venv/bin/hiermovie demo --workdir runs/demo

test: setup
	.venv/bin/ruff check hiermovie tests benchmarks
	$(PY) -m pytest -q -n 3 --dist worksteal  # 3 workers on the 2-core CI machine: the Ray tests wait

lint:
	.venv/bin/ruff check hiermovie tests benchmarks

# The full fault suite, writing RELIABILITY.md: the files that record its rows, and every test
# marked slow (CI runs all but those: the repeated kills, the long fault runs, the anchor names
# that share another's code path, the backbone DDP runs).
RELIABILITY_TESTS := tests/test_reliability.py tests/test_extract_faults.py tests/test_commit_kills.py \
	tests/test_decode_matrix.py tests/test_integrity.py tests/test_malformed_inputs.py \
	tests/test_feature_store.py tests/test_contextualizer.py tests/test_extract.py tests/test_probe.py \
	tests/test_cli.py tests/test_anchor_backbones.py tests/test_pretrain_backbone.py
reliability: setup
	$(PY) -m pytest -q -m "slow or not slow" $(RELIABILITY_TESTS) --reliability-report RELIABILITY.md
