"""The same rendered frames in every container and codec the project accepts.

Each frame carries its own number as ten black/white bars (readable after any lossy codec and
any resize), so the frames the pipeline decodes can be checked against PyAV, an independent
decoder: each file is either decoded to the frames PyAV shows at the planned times, with
features equal to the mp4's within codec noise, or refused with a reason naming the file.
"""

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from hiermovie.datasets.manifest import VIDEO_SUFFIXES
from hiermovie.pipeline.backbones import BackboneConfig
from hiermovie.pipeline.decode import decode_video
from hiermovie.pipeline.plans import BadVideo, PlanConfig
from hiermovie.pipeline.workers import ModelWorker
from tests.reliability import record

H, W, BITS, FPS, N = 96, 160, 10, 30, 300
# (file name, PyAV muxer, encoder); one of each suffix from VIDEO_SUFFIXES, and each codec in
# the two containers decord reads directly and in MPEG-TS
CASES = [
    ("h264.mp4", "mp4", "libx264"), ("hevc.mp4", "mp4", "libx265"),
    ("av1.mp4", "mp4", "libsvtav1"), ("mpeg4.mp4", "mp4", "mpeg4"),
    ("h264.m4v", "mp4", "libx264"), ("h264.3gp", "3gp", "libx264"),
    ("h264.mov", "mov", "libx264"), ("mpeg4.mov", "mov", "mpeg4"),
    ("h264.mkv", "matroska", "libx264"), ("hevc.mkv", "matroska", "libx265"),
    ("vp9.mkv", "matroska", "libvpx-vp9"), ("av1.mkv", "matroska", "libsvtav1"),
    ("mpeg2.mkv", "matroska", "mpeg2video"), ("vp9.webm", "webm", "libvpx-vp9"),
    ("av1.webm", "webm", "libsvtav1"),
    ("mpeg4.avi", "avi", "mpeg4"), ("h264.avi", "avi", "libx264"),
    ("h264.ts", "mpegts", "libx264"), ("hevc.ts", "mpegts", "libx265"),
    ("mpeg2.ts", "mpegts", "mpeg2video"), ("h264.m2ts", "mpegts", "libx264"),
    ("h264.mts", "mpegts", "libx264"), ("mpeg2.mpg", "mpeg", "mpeg2video"),
    ("mpeg2.mpeg", "mpeg", "mpeg2video"),
    # a DVD's VOB is an MPEG-2 program stream (ffmpeg's own "vob" muxer gives two frames one
    # timestamp, an order no decoder can recover: docs/backbones.md, "Containers")
    ("mpeg2.vob", "mpeg", "mpeg2video"),
    ("h264.flv", "flv", "libx264"), ("flv1.flv", "flv", "flv"),
    ("wmv2.wmv", "asf", "wmv2"),
]
OPTIONS = {"libx264": {"crf": "12"}, "libx265": {"crf": "12", "log-level": "error"},
           "libsvtav1": {"crf": "20", "svtav1-params": "log-level=0"}}
# the VidSitu recipe: 5 events, 16 frames each, 4 apart at 30 fps
PLAN = PlanConfig(kind="vidsitu", num_frames=16, sampling_rate=4)


def frame(i: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    for b in range(BITS):
        if (i >> b) & 1:
            img[: H // 2, b * 16:(b + 1) * 16] = 255
    y, x = np.mgrid[: H // 2, :W]
    img[H // 2:] = (127 + 100 * np.sin((x + 2 * i) / 9.0) * np.cos(y / 7.0))[..., None]
    return img


def code(img: np.ndarray) -> int:
    top, bw = img[: img.shape[0] // 2], img.shape[1] / BITS
    return sum(1 << b for b in range(BITS) if top[:, int((b + 0.5) * bw)].mean() > 127)


def encode(path: Path, fmt: str, codec: str) -> None:
    import av

    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=Fraction(FPS))
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = OPTIONS.get(codec, {})
        if codec not in OPTIONS:
            s.bit_rate = 4_000_000
        for i in range(N):
            f = av.VideoFrame.from_ndarray(frame(i), format="rgb24")
            f.pts = i
            for packet in s.encode(f):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)


def pyav_view(path: Path) -> tuple[list[int], np.ndarray]:
    """PyAV's view of a file: the frame numbers read from the pixels in display order, and the
    display times (the packets' presentation times, generated where the container has none,
    as ffmpeg does; relative to the first frame)."""
    import av

    with av.open(str(path)) as c:
        numbers = [code(f.to_ndarray(format="rgb24")) for f in c.decode(c.streams.video[0])]
    with av.open(str(path), options={"fflags": "+genpts"}) as c:
        st = c.streams.video[0]
        pts = sorted(float(p.pts * st.time_base) for p in c.demux(st) if p.pts is not None)
    return numbers, np.array(pts) - pts[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("matrix")
    out = {}
    for name, fmt, codec in CASES:
        encode(d / name, fmt, codec)
        out[name] = d / name
    return out


@pytest.fixture(scope="module")
def model():
    return ModelWorker(BackboneConfig(name="tiny3d/8", precision="fp32"), "cpu", 1)


def test_every_accepted_suffix_is_in_the_matrix():
    assert {Path(n).suffix for n, _, _ in CASES} == VIDEO_SUFFIXES


def test_each_format_gives_pyavs_frames_or_is_refused(files, model):
    ref = decode_video(str(files["h264.mp4"]), PLAN, (112, 112))
    ref_feats = model(ref.frames)[0].astype(np.float64)
    # how far the same model moves when the frames are wrong by 1 s: the tolerance must be far
    # below it
    wrong = decode_video(str(files["h264.mp4"]), replace(PLAN, kind="explicit"), (112, 112),
                         explicit=[(s.start_s + 1, s.end_s + 1) for s in ref.segments])
    wrong_rel = np.linalg.norm(model(wrong.frames)[0] - ref_feats) / np.linalg.norm(ref_feats)
    tol = 0.02
    assert wrong_rel > 5 * tol
    outcomes = {}
    for (name, _, _), path in zip(CASES, files.values(), strict=True):
        try:
            d = decode_video(str(path), PLAN, (112, 112))
        except BadVideo as e:
            assert str(path) in str(e) and "convert it" in str(e), (name, e)
            outcomes[name] = f"refused: `{str(e)[len(str(path)) + 2:][:70]}...`"
            continue
        times = np.concatenate([np.arange(PLAN.num_frames) * PLAN.sampling_rate / 30
                                - PLAN.num_frames * PLAN.sampling_rate // 2 / 30
                                + (s.start_s + s.end_s) / 2 for s in d.segments])
        numbers, shown = pyav_view(path)
        assert numbers == list(range(N)), f"{name}: PyAV sees other frames"
        want = np.clip(np.searchsorted(shown, times + 1e-3, side="right") - 1, 0, N - 1)
        stored = np.concatenate([s.frame_indices for s in d.segments])
        np.testing.assert_array_equal(stored, want, err_msg=name)
        got = np.array([code(f) for f in d.frames.reshape(-1, 112, 112, 3)])
        np.testing.assert_array_equal(got, want, err_msg=f"{name}: wrong frames decoded")
        rel = np.linalg.norm(model(d.frames)[0] - ref_feats) / np.linalg.norm(ref_feats)
        assert rel < tol, (name, rel)
        outcomes[name] = f"PyAV's frames at the planned times; features rel. L2 {rel:.4f}"
    refused = [n for n, o in outcomes.items() if o.startswith("refused")]
    assert sorted(refused) == ["flv1.flv", "wmv2.wmv"]  # no codec Matroska can hold
    for (name, fmt, codec) in CASES:
        record("Containers and codecs (same 300 rendered frames; frames checked against PyAV)",
               f"`{name}` ({fmt} / {codec})", 1, outcomes[name])
    record("Containers and codecs (same 300 rendered frames; frames checked against PyAV)",
           "tolerance check: the mp4's features 1 s off the plan", 1,
           f"rel. L2 {wrong_rel:.3f} (tolerance {tol})")


def test_frames_at_survives_float32_and_millisecond_timestamps():
    from hiermovie.pipeline.plans import frames_at

    times32 = (np.arange(1800) / 24).astype(np.float32).astype(float)  # decord's float32
    assert frames_at(times32, np.array([808 / 24]))[0] == 808
    ms = np.round(np.arange(300) / 30, 3)  # Matroska's whole milliseconds
    assert (frames_at(ms, np.arange(300) / 30) == np.arange(300)).all()
    assert frames_at(ms, np.array([100 / 30 - 0.01]))[0] == 99  # still the frame on screen


def test_decoder_reasons_carry_no_clock():
    from hiermovie.pipeline.containers import reason as _reason

    e = RuntimeError("[22:45:12] /src/video/video_reader.cc:270: Error reading x.mp4\nmore")
    assert _reason(e) == "/src/video/video_reader.cc:270: Error reading x.mp4"


def test_a_seek_the_decoder_gives_up_is_read_again_or_fails_the_video(tmp_path, monkeypatch):
    """decord2 abandons a skip it finds slow (its decoder thread silent for 10 000 reads), then
    returns later frames than asked and says so only on stderr; such a read is done again, and a
    video whose reads keep giving up fails naming the file, never stores other frames."""
    import os

    from hiermovie.pipeline import decode

    path = tmp_path / "h264.mp4"
    encode(path, "mp4", "libx264")
    real, calls = decode.get_frames, []

    def gives_up(times: int):
        def read(vr, source, indices, width, height, *, name=""):
            calls.append(indices)
            if len(calls) <= times:  # as decord does: its words on stderr, frames further on
                os.write(2, f"[{source}] {decode.SEEK_GAVE_UP} at frame {indices[0]}.\n".encode())
                indices = [min(i + 7, N - 1) for i in indices]
            return real(vr, source, indices, width, height, name=name)
        return read

    monkeypatch.setattr(decode, "get_frames", gives_up(1))
    d = decode_video(str(path), PLAN, (112, 112))
    got = np.array([code(f) for f in d.frames.reshape(-1, 112, 112, 3)])
    np.testing.assert_array_equal(got, np.concatenate([s.frame_indices for s in d.segments]))
    assert len(calls) == 2
    calls.clear()
    monkeypatch.setattr(decode, "get_frames", gives_up(decode.READS))
    with pytest.raises(BadVideo, match=f"{path}: the decoder gave up seeking"):
        decode_video(str(path), PLAN, (112, 112))
    assert len(calls) == decode.READS
    record("Integrity of decoded frames", "decord gives up a seek (its stderr message; frames "
           "7 further on), once / on every read", 2,
           "read again on a fresh reader: the planned frames / the video fails naming the file")
