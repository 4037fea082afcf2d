import os

# The suite runs on three pytest-xdist workers beside the Ray and CLI processes the tests start;
# torch's default of one thread per core oversubscribes the cores, and its spinning threads made
# small CPU trainings 10-15x slower (1 s alone, 18 s in the suite). Set before torch loads, and
# inherited by every subprocess; a value set by the caller wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from hiermovie._compat import ensure_torchvision_importable  # noqa: E402
from hiermovie.feature_store import Provenance  # noqa: E402
from tests.records import make_record  # noqa: E402, F401 (the tests' one record maker)

ensure_torchvision_importable()  # tests import transformers and torchvision directly


@pytest.fixture(scope="module")
def many_clips(tmp_path_factory):
    """Eight 10-s clips for the fault tests."""
    from tests.videos import make_video

    d = tmp_path_factory.mktemp("many")
    for i in range(8):
        make_video(d / f"v{i}.mp4", 10.0, 30.0, (64, 80), seed=i)
    return d


@pytest.fixture
def prov():
    return Provenance(backbone="test", dim=8, tokens_per_segment=1, dtype="float32")


def pytest_addoption(parser):
    parser.addoption("--reliability-report", default="",
                     help="write the reliability records of this run to this Markdown file")


_outcomes = {"passed": 0, "failed": 0}


def pytest_configure(config):
    if config.getoption("--reliability-report") and config.getoption("numprocesses", None):
        # the records live in the process that ran each test: xdist workers would lose them
        raise pytest.UsageError("--reliability-report needs one process: run it without -n")


def pytest_runtest_logreport(report):
    from tests import reliability

    if report.when == "call" or report.outcome == "failed":
        _outcomes[report.outcome] = _outcomes.get(report.outcome, 0) + 1
        if report.outcome == "failed":
            reliability.FAILED.append(report.nodeid)


def pytest_sessionfinish(session):
    path = session.config.getoption("--reliability-report")
    if path:
        from tests import reliability

        reliability.write_report(path, _outcomes["passed"], _outcomes["failed"])


def write_store(url, provenance: Provenance, *shards: list, storage_options: dict | None = None,
                **layout) -> str:
    """A store holding `shards` (each a list of records), written as the jobs write one:
    opened with mode "a", created, leased, one shard per list."""
    from hiermovie.feature_store import FeatureStore

    with FeatureStore.open(str(url), "a", storage_options=storage_options) as store:
        store.create(provenance, **layout)
        for records in shards:
            store.write(records)
    return str(url)
