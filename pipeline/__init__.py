"""ecg-edge data and training pipeline (research tool, not a medical device)."""

from pipeline.util.version import __version__

__all__ = ["__version__"]
