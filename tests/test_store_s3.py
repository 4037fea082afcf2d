"""A store written to and read back from an S3-compatible server on loopback (moto)."""

import numpy as np
import pytest

from hiermovie.feature_store import FeatureStore, Provenance
from tests.conftest import make_record, write_store

moto_server = pytest.importorskip("moto.server", reason="moto[s3] and flask are test dependencies")
pytest.importorskip("s3fs", reason="s3fs is a test dependency")


@pytest.fixture(scope="module")
def s3():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    opts = {"endpoint_url": f"http://{host}:{port}", "key": "test", "secret": "test",
            "client_kwargs": {"region_name": "us-east-1"}}
    import boto3
    boto3.client("s3", endpoint_url=opts["endpoint_url"], aws_access_key_id="test",
                 aws_secret_access_key="test", region_name="us-east-1").create_bucket(
        Bucket="features")
    yield opts
    server.stop()


def test_s3_round_trip(s3):
    url = "s3://features/run1.zarr"
    recs = [make_record(f"v{i}", 3, seed=i) for i in range(4)]
    write_store(url, Provenance(backbone="b", dim=8, dtype="float32"), recs[:2], recs[2:],
                storage_options=s3)
    store = FeatureStore(url, storage_options=s3)
    assert sorted(store.videos()) == ["v0", "v1", "v2", "v3"]
    for r in recs:
        np.testing.assert_array_equal(store.get(r.video_id), r.features)
