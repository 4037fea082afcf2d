"""The reliability report: tests record what they tried and what happened.

`pytest --reliability-report RELIABILITY.md ...` writes the records of the session as Markdown
(see README: the full fault suite); without the option nothing is written.
"""

from __future__ import annotations

import datetime
import platform
import shlex
import sys
from collections import defaultdict

RECORDS: list[dict[str, str]] = []
FAILED: list[str] = []


def record(area: str, what: str, tries: int | str, outcome: str) -> None:
    """One row: what was tried, how many times, what happened (call after the asserts)."""
    RECORDS.append({"area": area, "what": what, "tries": str(tries), "outcome": outcome})


def write_report(path: str, passed: int, failed: int) -> None:
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in RECORDS:
        rows[r["area"]].append(r)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability and security report",
        "",
        "Written by the test suite itself (`tests/reliability.py`); do not edit by hand.",
        "",
        f"- Command: `{shlex.join(['pytest', *sys.argv[1:]])}`",
        f"- Run: {now} on {platform.node()} ({platform.machine()}, Python "
        f"{platform.python_version()}); {passed} tests passed, {failed} failed.",
        "",
    ]
    for area, items in rows.items():
        lines += [f"## {area}", "", "| What was tried | Times | What happened |", "|---|---|---|"]
        lines += [f"| {r['what']} | {r['tries']} | {r['outcome']} |".replace("\n", " ")
                  for r in items]
        lines.append("")
    if FAILED:
        lines += ["## Failed", ""] + [f"- `{n}`" for n in FAILED] + [""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
