"""Which files decord reads right, and a remux for the others.

decord finds frames by its own index of the container. That index is right for MP4/MOV (and
3GP) and Matroska/WebM: frame numbers and timestamps equal PyAV's for h264, hevc, vp9, av1,
mpeg2 and mpeg4 (tests/test_decode_matrix.py). In other containers it is wrong (MPEG-TS comes
back shifted by ~2 s of frames, MPEG-PS and AVI with B-frames get garbage timestamps and wrong
frames), so their video stream is first remuxed, packets copied without re-encoding, into a
temporary Matroska file, which decord then reads correctly; a codec Matroska cannot hold is
refused naming the file. PyAV reads the container's format first, so the file's content, not
its name, picks the route.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from hiermovie.pipeline.plans import BadVideo

# PyAV's names of the demuxers whose frames decord indexes correctly
DECORD_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"}


def reason(e: BaseException) -> str:
    """The decoder's message without its clock (decord prefixes "[hh:mm:ss] "), so two runs
    store the same reason."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return re.sub(r"\[\d\d:\d\d:\d\d\] ", "", text)[:200]


@dataclass(frozen=True)
class Container:
    """What a file's header says, as PyAV reads it."""

    format: str  # PyAV's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    frames: int  # declared by the video stream (0 = not declared)
    duration_s: float | None


def probe(path: str) -> Container | None:
    """The header of a file with a video stream (None otherwise); read once per decode, as
    routing and the truncation check share it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _probe(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _probe(path: str, mtime_ns: int, size: int) -> Container | None:
    # keyed by mtime and size too: a file fixed and retried is read afresh
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                return None
            duration = container.duration / 1e6 if container.duration else None
            return Container(container.format.name, container.streams.video[0].frames,
                             duration)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def readable(path: str) -> Iterator[str]:
    """A path decord reads correctly: `path` itself, or its video stream remuxed into a
    temporary Matroska file (removed afterwards) for containers decord indexes wrongly."""
    info = probe(path)
    if info is None or info.format in DECORD_FORMATS:
        yield path  # decord opens it, or says why it cannot
        return
    import av

    with tempfile.TemporaryDirectory(prefix="hiermovie-remux-") as tmp:
        out_path = os.path.join(tmp, "video.mkv")
        try:
            # genpts: AVI and some MPEG streams carry no presentation time on B-frames
            with av.open(path, options={"fflags": "+genpts"}) as src, \
                    av.open(out_path, "w", format="matroska") as out:
                stream = src.streams.video[0]
                target = out.add_stream_from_template(stream)
                for packet in src.demux(stream):
                    if packet.dts is None and packet.pts is None:
                        continue  # the demuxer's end-of-stream marker
                    packet.stream = target
                    out.mux(packet)
        except (av.error.FFmpegError, ValueError) as e:
            raise BadVideo(f"{path}: {info.format} container with a codec whose frames cannot be "
                           f"read at verified times ({reason(e)}); convert it, e.g. ffmpeg "
                           "-i IN -c:v libx264 OUT.mp4") from None
        yield out_path
