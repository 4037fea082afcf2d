"""Checkpoints a kill cannot corrupt (a checksum trailer: a torn or altered file is refused,
never half-loaded) and the metrics log a resumed run continues."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from hiermovie.config import ConfigError

TRAILER = b"\nhiermovie-sha256:"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """One atomic write of the state followed by its sha256 (a trailer in the same file), so
    a torn or corrupted file is detected on load. (A separate checksum file would need a
    second write, and a kill between the two left a good checkpoint that looked corrupt.)"""
    buf = io.BytesIO()
    torch.save(state, buf)
    body = buf.getvalue()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(body + TRAILER + hashlib.sha256(body).hexdigest().encode())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    body, sep, digest = data.rpartition(TRAILER)
    if not sep or hashlib.sha256(body).hexdigest().encode() != digest.strip():
        raise ConfigError(f"{path}: checkpoint is corrupted or incomplete (checksum mismatch)")
    try:
        return torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # what the file tried to run is not run
        what = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln),
                    "")
        raise ConfigError(f"{path}: refused to load: the checkpoint holds pickled objects "
                          f"other than tensors{f' ({what[:160]})' if what else ''}") from None


def open_metrics(out: Path, start: int) -> io.TextIOWrapper:
    """metrics.jsonl for appending; on resume, rows after the checkpoint (written by the
    interrupted run, and about to be redone) are dropped first, so each step appears once."""
    path = out / "metrics.jsonl"
    if start and path.exists():
        keep = [line for line in path.read_text().splitlines()
                if line.strip() and _step_of(line) is not None and _step_of(line) <= start]
        path.write_text("".join(line + "\n" for line in keep))
    return open(path, "a" if start else "w")


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line of a killed run
