"""Writing matplotlib figures as PNG files, atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.util.atomic import atomic_target


def save_figure(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG through a temp file beside `path` (never half-written)."""
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path
