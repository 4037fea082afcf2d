"""An experiment as steps (the demo's, the benchmarks'): each step runs unless its output
exists, is timed, and a failed one ends the experiment."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Steps:
    """`steps(name, done, fn, *args)` runs `fn(*args)` unless the path `done` exists (None:
    always), adds its seconds to `steps.seconds[name]`, and exits with its code if non-zero."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, done: Path | None, fn: Callable[..., Any], *args: Any) -> None:
        if done is not None and done.exists():
            print(f"== {name}: cached ({done})")
            return
        print(f"\n== {name}")
        t = time.time()
        rc = fn(*args)
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.time() - t, 1)
        if rc:
            print(f"== {name} failed (exit {rc})")
            raise SystemExit(rc)
