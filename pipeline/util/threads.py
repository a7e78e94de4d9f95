"""How many CPU threads torch computes with, and how its OpenMP threads wait: `--threads`.

torch splits every convolution over its OpenMP threads and waits for the slowest at the end. With
OpenMP's default wait (spin for a while, then sleep), a thread that shares its core with another
busy process holds the others spinning: one competing CPU-bound process made an epoch of the default
student 5-10x slower with 2 threads on this 2-core machine. Threads that sleep while they wait
(OMP_WAIT_POLICY=PASSIVE) leave the core to whoever can use it. tests/bench/bench_train_load.py
measures the choice (pipeline/README.md, "Training on a busy machine").

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


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), shared among the ranks of a torchrun on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, cores // max(1, ranks))


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
                   help=f"CPU threads for torch (default: every core this process may use, {available_cores()} here; "
                        f"waiting threads sleep ({WAIT_ENV}={WAIT_POLICY}), so a busy machine slows it at most about 2x)")  # fmt: skip


def use_threads(threads: int | None) -> int:
    """torch computes with `threads` threads (None: available_cores()); returns the count in effect."""
    import torch

    n = available_cores() if threads is None else threads
    if n < 1:
        raise ValueError(f"threads must be >= 1, not {n}")
    torch.set_num_threads(n)
    return torch.get_num_threads()
