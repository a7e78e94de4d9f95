"""The package version written into checkpoints and data sets."""

__version__ = "0.1.0"
