"""A busy machine for tests: CPU-bound processes and one that allocates and touches memory.

    with busy_machine() as load:   # two spinning processes and one memory toucher
        ...                        # the test, on a machine with every core taken
    load.cpu_seconds()             # what the load got (a test can check it really ran)

Each load process is a child of this one and ends by itself when its parent goes away (it checks
every LOAD_CHECK_S) or after `max_s`, so a killed test run leaves nothing behind; leaving the block
kills them by pid. Only one busy machine runs at a time across pytest-xdist workers (a file lock in
the session's shared temporary directory, `lock`), so two load tests never take 2x the cores.
Run by hand: `python tests/load.py SECONDS` keeps the machine busy that long.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

LOAD_CHECK_S = 0.5
MAX_S = 900.0  # no load process outlives this, whatever happens to the test
MEMORY_MB = 256  # what the memory toucher allocates (and keeps writing, a page at a time)

# The load processes: plain Python, no imports of the project (nothing to slow their start).
_CPU = """
import os, sys, time
parent, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
x = 0
while os.getppid() == parent and time.monotonic() < end:
    for _ in range(200_000):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
"""
_MEMORY = """
import os, sys, time
parent, end, mb = int(sys.argv[1]), time.monotonic() + float(sys.argv[2]), int(sys.argv[3])
buf = bytearray(mb << 20)
page, k = 4096, 0
while os.getppid() == parent and time.monotonic() < end:
    for i in range(0, len(buf), page):
        buf[i] = k & 0xFF
    k += 1
"""


@dataclass
class Load:
    """The running load processes (`procs`: the CPU-bound ones first, then the memory toucher)."""

    procs: list[subprocess.Popen] = field(default_factory=list)

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def cpu_seconds(self) -> float:
        """CPU time the load processes have used so far (user + system, from /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for p in self.procs:
            try:
                fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait()


def start_load(cpu: int = 2, memory_mb: int = MEMORY_MB, max_s: float = MAX_S) -> Load:
    """Start `cpu` CPU-bound processes and (memory_mb > 0) one memory toucher."""
    load = Load()
    me = str(os.getpid())
    try:
        for _ in range(cpu):
            load.procs.append(subprocess.Popen([sys.executable, "-c", _CPU, me, str(max_s)], stdin=subprocess.DEVNULL))
        if memory_mb > 0:
            load.procs.append(subprocess.Popen([sys.executable, "-c", _MEMORY, me, str(max_s), str(memory_mb)], stdin=subprocess.DEVNULL))
    except BaseException:
        load.stop()
        raise
    return load


@contextmanager
def busy_machine(cpu: int = 2, memory_mb: int = MEMORY_MB, lock: Path | None = None) -> Iterator[Load]:
    """The machine busy for the block's whole duration; `lock`: a file that serialises busy machines
    across processes (pytest-xdist workers)."""
    from filelock import FileLock

    with FileLock(str(lock)) if lock is not None else _nothing():
        load = start_load(cpu, memory_mb)
        try:
            time.sleep(0.5)  # the load is spinning before the test starts
            if not load.alive():
                raise RuntimeError(f"a load process ended at once: {[p.returncode for p in load.procs]}")
            yield load
        finally:
            load.stop()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    with busy_machine() as running:
        time.sleep(seconds)
        print(f"load: {running.cpu_seconds():.1f} CPU s in {seconds:g} s")
