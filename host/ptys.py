"""Pseudo-terminals that stand in for a board's serial port, and the `--link` symlinks that name them.

`open_pty` for a program that is handed the master side (`simulate`); `pty_port` for one that
writes the master itself (`simulate --text`). A client opens the slave's path like any serial port.
"""

from __future__ import annotations

import os
import threading
import tty
from pathlib import Path


def open_pty() -> tuple[int, int, str]:
    """A new pseudo-terminal in raw mode: (master fd, slave fd, the slave's path)."""
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        return master, slave, os.ttyname(slave)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise


def pty_port() -> tuple[int, str]:
    """A new raw pseudo-terminal: (master fd, the slave's path); nobody holds the slave until a client opens it."""
    master, slave, path = open_pty()
    os.close(slave)
    return master, path


def check_link(link: str | Path | None, error: type[Exception]) -> Path | None:
    """`link` as a path (None: no link); `error` when something other than a symlink is there."""
    if link is None:
        return None
    link = Path(link)
    if link.exists() and not link.is_symlink():
        raise error(f"--link {link}: exists and is not a symlink")
    return link


def make_link(link: Path, port: str, error: type[Exception]) -> None:
    """Point the symlink `link` at `port` (replacing an old symlink); `error` when it cannot be made."""
    try:
        if link.is_symlink():
            link.unlink()
        link.symlink_to(port)
    except OSError as exc:
        raise error(f"cannot make the link {link} -> {port}: {exc}") from None


def remove_link(link: Path | None) -> None:
    """Remove the symlink `link` if it is still there."""
    if link is not None and link.is_symlink():
        link.unlink()


class PtyDevice:
    """A device a thread plays on the master side of a new raw pty (`port`: the slave's path; `link`: an
    optional symlink to it), from `_open` until `close()`; a context manager. Subclasses write `_run`,
    which loops until `self._stop` is set."""

    _master: int = -1
    link: Path | None = None

    def _open(self, link: str | Path | None = None) -> None:
        self._stop = threading.Event()
        link_path = check_link(link, ValueError)
        self._master, self.port = pty_port()
        os.set_blocking(self._master, False)
        if link_path is not None:
            try:
                make_link(link_path, self.port, ValueError)
            except ValueError:
                os.close(self._master)
                self._master = -1
                raise
            self.link = link_path
        self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__} {self.port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "PtyDevice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the thread, close the pty (a client sees its port go away), remove the link."""
        self._stop.set()
        self._thread.join(5)
        if self._master >= 0:
            os.close(self._master)
            self._master = -1
        remove_link(self.link)
