"""Videos the tests generate: moving patterns, several fps / sizes / codecs, and broken files."""

from pathlib import Path

import numpy as np

from hiermovie.datasets.video_io import write_video


def pattern(n: int, h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for i in range(n):
        yield np.roll(base, shift=3 * i, axis=1)


def make_video(path: Path, seconds: float = 10.0, fps: float = 30.0, size=(96, 128), seed=0,
               codec: str = "libx264") -> Path:
    write_video(path, pattern(int(round(seconds * fps)), *size, seed=seed), fps, codec=codec)
    return path


def make_bad_files(folder: Path, good: Path) -> dict[str, Path]:
    """One broken file of each kind; returns id -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    files = {
        "zero": (folder / "zero.mp4", b""),
        "text": (folder / "text.mp4", b"this is not a video\n" * 10),
        "truncated": (folder / "truncated.mp4", data[: len(data) // 3]),
    }
    for path, content in files.values():
        path.write_bytes(content)
    short = folder / "short.mp4"
    make_video(short, seconds=1.0)
    audio = folder / "audio.mp4"
    make_audio_only(audio)
    return {k: p for k, (p, _) in files.items()} | {"short": short, "audio": audio}


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(int(seconds * 16000 / 1024)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def same_store(a_url, b_url) -> None:
    """Two stores hold the same shards, videos, feature bytes and frame indices."""
    from hiermovie.feature_store import FeatureStore

    a, b = FeatureStore(str(a_url)), FeatureStore(str(b_url))
    assert a.shard_names == b.shard_names
    assert a.videos(status=None) == b.videos(status=None)
    for vid in a.videos():
        assert a.get(vid).tobytes() == b.get(vid).tobytes()
        np.testing.assert_array_equal(a.frame_indices(vid), b.frame_indices(vid))
