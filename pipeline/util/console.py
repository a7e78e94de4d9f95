"""What every console script shares: the disclaimer, quiet third-party libraries, and how a command is run.

Third-party output that tells the user nothing is kept out of the way here, once, for `ecg-pipeline`,
`ecg-export` and `ecg-host` alike; warnings of our own still show.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

DISCLAIMER = "Research tool, not a medical device: never use its output for clinical decisions."

# Read by TensorFlow's and absl's C++ logging when TensorFlow loads: 2 keeps ERROR, drops INFO and WARNING.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
# Python loggers of other packages, with the level below which they are not shown.
QUIET_LOGGERS = {
    # torch.onnx.export(dynamo=True): "torchvision is not installed. Skipping torchvision::nms" and the like
    "torch.onnx._internal.exporter._registration": logging.ERROR,
}
# Whole lines that C++ libraries write straight to file descriptor 2 (past Python and past any log level).
NOISE_LINES = (
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",  # LiteRT's minimal logger, once per process
)


@contextmanager
def without_noise_lines(noise: Sequence[bytes] = NOISE_LINES) -> Iterator[None]:
    """Hold back what C++ code writes to file descriptor 2 during the block; then pass it on without NOISE_LINES.

    For short library calls only (LiteRT's `allocate_tensors`, which logs the XNNPACK line), never around
    long work: the output appears when the block ends.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [ln for ln in held.read().splitlines(keepends=True) if ln.rstrip(b"\r\n") not in noise]
            if kept:
                os.write(2, b"".join(kept))


def quiet_third_party() -> None:
    """Environment, loggers and warning filters that keep third-party noise out (idempotent)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)  # a user's own setting wins
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    # torch.export inside torch.onnx.export (dynamo) deprecating its own pytree API: nothing for us to change
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None, expected: tuple[type[BaseException], ...] = ()) -> int:
    """Parse `argv`, run the chosen subcommand's `func`; an `expected` error becomes one line on stderr and exit 2."""
    warnings.formatwarning = lambda message, *_a, **_k: f"warning: {message}\n"
    quiet_third_party()
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # a log piped to a file keeps stdout and stderr in order
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
