"""How many CPU threads torch computes with, and how its OpenMP threads wait: `--threads`.

torch splits every convolution over its OpenMP threads and waits for the slowest at the end of each.
A thread that shares its core with another busy process holds the others up, and with OpenMP's
default wait (spin a while, then sleep) the waiting ones burn the core the late one needs: beside one
competing CPU-bound process an epoch of the default student took 5x as long with 2 threads on this
2-core machine; threads that sleep while they wait (OMP_WAIT_POLICY=PASSIVE) still took 1.6-2.4x,
since every convolution waits for a descheduled thread. So the default leaves one core to the rest of
the machine (cores - 1 threads, at least 1) and makes waiting threads sleep: tests/bench/bench_train_load.py
and pipeline/README.md ("Training on a busy machine") have the figures.

OpenMP reads OMP_WAIT_POLICY once, when torch loads: `prepare_openmp()` runs before the first
`import torch` of a console script (a user's own setting wins); `use_threads(n)` sets the count.
"""

from __future__ import annotations

import argparse
import os

WAIT_ENV = "OMP_WAIT_POLICY"
WAIT_POLICY = "PASSIVE"


def prepare_openmp() -> None:
    """OpenMP threads that sleep while they wait, unless the environment says otherwise; call before torch loads."""
    os.environ.setdefault(WAIT_ENV, WAIT_POLICY)


def default_threads() -> int:
    """Every core this process may use but one (at least 1), shared among the ranks of a torchrun on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, (cores - 1) // ranks)


def thread_count(text: str) -> int:
    """argparse type of --threads: a whole number >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"a whole number of threads >= 1, not {text!r}")
    return n


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """--threads N for a command that computes with torch."""
    p.add_argument("--threads", type=thread_count, default=None,
                   help=f"CPU threads for torch (default: the cores this process may use but one, {default_threads()} here; "
                        f"waiting threads sleep, {WAIT_ENV}={WAIT_POLICY}: another busy process slows it at most about 2x)")  # fmt: skip


def use_threads(threads: int | None) -> int:
    """torch computes with `threads` threads (None: default_threads()); returns the count in effect."""
    import torch

    torch.set_num_threads(default_threads() if threads is None else threads)
    return torch.get_num_threads()
