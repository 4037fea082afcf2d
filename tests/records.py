"""Feature records for tests, importable without torch (subprocess harnesses start fast)."""

import numpy as np

from hiermovie.feature_store.schema import VideoRecord


def make_record(video_id: str, n: int, k: int = 1, d: int = 8, seed: int = 0,
                frames: int = 4) -> VideoRecord:
    rng = np.random.default_rng(seed)
    start = np.arange(n) * 2.0
    return VideoRecord(
        video_id=video_id,
        features=rng.standard_normal((n, k, d)).astype(np.float32),
        start_s=start, end_s=start + 2.0,
        frame_indices=np.arange(n * frames).reshape(n, frames),
        duration_s=2.0 * n, fps=30.0, num_frames=60 * n)
