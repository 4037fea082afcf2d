"""hiermovie: hierarchical self-supervised movie representation learning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hiermovie")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"
