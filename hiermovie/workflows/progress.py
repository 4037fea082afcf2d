"""Progress bars for long jobs: rate and ETA on a terminal, sparse lines in log files."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress(*, total: int, desc: str, unit: str, enabled: bool = True, **kw: Any) -> tqdm:
    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, smoothing=0.1,
                mininterval=0.5 if tty else 30.0, dynamic_ncols=tty, **kw)
