"""Where videos and labels come from: manifests, VidSitu, LVU and the synthetic benchmark; and
the stores' features joined with them (`labelled`: with VidSitu's labels; `sequences`: what a
contextualizer trains on, with its held-out split)."""

from hiermovie.config import ConfigError
from hiermovie.datasets.manifest import ManifestError, VideoItem, load_videos


def data_root(data: str, kind: str) -> str:
    """ROOT of a `kind:ROOT` data set (a bare ROOT is taken as `kind`'s), one line if not."""
    prefix, sep, root = data.partition(":")
    if not sep:
        prefix, root = kind, data
    if prefix != kind or not root:
        raise ConfigError(f"data: expected {kind}:ROOT, got {data!r}")
    return root


def load_input(source: str, split: str = "") -> list[VideoItem]:
    """Videos of an input: a folder, a .csv/.jsonl manifest, or `vidsitu:`/`lvu:`/`kinetics:`
    ROOT.

    `split` keeps one VidSitu or Kinetics split (e.g. pretraining on training clips only).
    """
    kind, sep, rest = source.partition(":")
    if sep and kind == "kinetics" and rest:
        from hiermovie.datasets import kinetics

        return kinetics.videos(rest, split)
    if sep and kind == "vidsitu" and rest:
        from hiermovie.datasets import vidsitu

        return vidsitu.videos(rest, split)
    if sep and kind == "lvu" and rest:
        from hiermovie.datasets import lvu

        return lvu.videos(rest)
    return load_videos(source)


__all__ = ["ManifestError", "VideoItem", "data_root", "load_input", "load_videos"]
