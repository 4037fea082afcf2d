"""The examples of docs/python-api.md run, in order, on a synthetic data set."""

import re
from pathlib import Path

from tests.test_probe import bench  # noqa: F401 (the fixture)

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def test_python_api_examples_run(bench):  # noqa: F811
    root, url = bench
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 4
    scope = {"STORE": url, "ROOT": str(root), "CTX": str(root / "ctx")}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), scope)
    assert scope["out"].shape[-1] == 16 and scope["batch"]["verbs"].shape[1] == 5
    assert (scope["batch"]["verbs"] >= 0).all()  # training clips' verbs are in the vocab
