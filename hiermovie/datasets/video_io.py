"""Writing real video files (h264 mp4 through PyAV), for the synthetic benchmark and tests."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0, *,
                codec: str = "libx264", crf: int = 23, gop: int = 30,
                pts_s: Iterable[float] | None = None) -> None:
    """Encode uint8 RGB frames [H, W, 3] (even sizes for yuv420p).

    `pts_s` gives each frame's own timestamp in seconds, for variable-frame-rate videos.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    rate = Fraction(fps).limit_denominator(1001)
    times = iter(pts_s) if pts_s is not None else None
    formats = {".mkv": "matroska", ".webm": "webm", ".avi": "avi", ".mov": "mov"}
    fmt = formats.get(path.suffix, "mp4")
    with av.open(str(tmp), mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "g": str(gop)} if codec == "libx264" else {}
        if times is not None:
            stream.time_base = Fraction(1, 1000)
        first = True
        for i, img in enumerate(frames):
            if first:
                stream.height, stream.width = img.shape[:2]
                first = False
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if times is not None:
                frame.pts = round(next(times) * 1000)
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)  # a killed writer never leaves a file that looks complete
