"""Where videos and labels come from: manifests, VidSitu, LVU and the synthetic benchmark."""

from hiermovie.datasets.manifest import ManifestError, VideoItem, load_videos


def load_input(source: str) -> list[VideoItem]:
    """Videos of an extract input: a folder, a .csv/.jsonl manifest, or `vidsitu:`/`lvu:` ROOT."""
    kind, sep, rest = source.partition(":")
    if sep and kind in ("vidsitu", "lvu") and rest:
        from hiermovie.datasets import lvu, vidsitu

        return (vidsitu if kind == "vidsitu" else lvu).videos(rest)
    return load_videos(source)


__all__ = ["ManifestError", "VideoItem", "load_input", "load_videos"]
