"""ecg-edge data and training pipeline (research tool, not a medical device)."""

__version__ = "0.1.0"
