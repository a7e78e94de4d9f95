"""What every console script shares: the disclaimer and how a command is run."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

DISCLAIMER = "Research tool, not a medical device: never use its output for clinical decisions."


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None, expected: tuple[type[BaseException], ...] = ()) -> int:
    """Parse `argv`, run the chosen subcommand's `func`; an `expected` error becomes one line on stderr and exit 2."""
    warnings.formatwarning = lambda message, *_a, **_k: f"warning: {message}\n"
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
