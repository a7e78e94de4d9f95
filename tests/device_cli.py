"""A device command (`ecg-host simulate`, `--text` too) run in the foreground as a user runs it: until
its "serial port ready" line, then Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]


def lines_until_ready(proc: subprocess.Popen, timeout: float) -> list[str]:
    """stdout lines of a `simulate` process up to its "serial port ready" line (or EOF / timeout)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            break
        lines.append(line)
        if line.startswith("serial port ready"):
            break
    return lines


@dataclass
class Foreground:
    """The command's stdout up to its ready line, then (after Ctrl-C) the rest, stderr and exit status."""

    lines: list[str]
    out: str = ""
    err: str = ""
    returncode: int | None = None


@contextmanager
def foreground(cmd: list[str], ready_s: float, stop_s: float) -> Iterator[Foreground]:
    """Run `cmd` from the repository until it is ready; leaving the block sends SIGINT and collects
    its output within `stop_s` (a failed block, or a command that does not stop, is killed)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = Foreground(lines_until_ready(proc, ready_s))
        yield run
        proc.send_signal(signal.SIGINT)
        run.out, run.err = proc.communicate(timeout=stop_s)
        run.returncode = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
