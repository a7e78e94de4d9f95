"""A noisy serial line for soak tests: a proxy pseudo-terminal between the host and a device that flips
bits, drops and duplicates bytes and pauses the line, each at its own rate, from a seeded RNG.

`FaultInjector` applies a `FaultSpec` to one direction of a byte stream (deterministic for a seed,
whatever the chunking: each kind of fault keeps its own RNG and the distance to its next event) and
counts what it did. `FaultProxy` (a `host.ptys.PtyDevice`) puts two of them between a new pty
(`port`, what the host opens) and the device's port. For each direction it also runs a protocol
`Reader` on what it forwards, which gives what the receiver's reader sees: CRC rejections, and the
resync time from a damaged byte to the end of the next frame delivered intact after it.
"""

from __future__ import annotations

import math
import os
import select
import time
import tty
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .protocol import Reader
from .ptys import PtyDevice

DEFAULT_PAUSE_S = 0.15  # longer than the protocol's idle flush (100 ms): a pause inside a frame loses it
POLL_S = 0.01
DIRECTIONS = ("host_to_device", "device_to_host")


@dataclass(frozen=True)
class FaultSpec:
    """Rates of each fault: `ber` per bit; drops, duplicates and pauses (of `pause_s`) per byte."""

    ber: float = 0.0
    drop_rate: float = 0.0
    dup_rate: float = 0.0
    pause_rate: float = 0.0
    pause_s: float = DEFAULT_PAUSE_S
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("ber", "drop_rate", "dup_rate", "pause_rate"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v < 1.0):
                raise ValueError(f"fault {name} {v!r}: expected a probability in [0, 1)")
        if not (math.isfinite(self.pause_s) and 0.0 <= self.pause_s <= 60.0):
            raise ValueError(f"fault pause {self.pause_s!r} s: expected 0 to 60 s")

    @property
    def any(self) -> bool:
        return any((self.ber, self.drop_rate, self.dup_rate, self.pause_rate))

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class _Events:
    """Positions of one kind of rare event in a stream: the gap to the next one is geometric."""

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        self.rate, self.rng = rate, rng
        self.next = self._gap()  # index of the next event, counted from the current chunk's start

    def _gap(self) -> int:
        return int(self.rng.geometric(self.rate)) - 1 if self.rate > 0 else 1 << 62

    def take(self, n: int) -> list[int]:
        """Event positions in the next `n` units, in order."""
        out = []
        while self.next < n:
            out.append(self.next)
            self.next += 1 + self._gap()
        self.next -= n
        return out


@dataclass
class FaultCounts:
    bytes_in: int = 0
    bytes_out: int = 0
    flipped_bits: int = 0
    dropped_bytes: int = 0
    duplicated_bytes: int = 0
    pauses: int = 0


class FaultInjector:
    """One direction of a noisy line. `apply(data)` gives the chunks to write, each after its pause."""

    _ORDER = {"pause": 0, "drop": 1, "dup": 2}

    def __init__(self, spec: FaultSpec, stream: int = 0) -> None:
        self.spec = spec
        rng = [np.random.default_rng([spec.seed, stream, k]) for k in range(4)]
        self._flips = _Events(spec.ber, rng[0])
        self._bytes = {"drop": _Events(spec.drop_rate, rng[1]), "dup": _Events(spec.dup_rate, rng[2]), "pause": _Events(spec.pause_rate, rng[3])}
        self.counts = FaultCounts()

    def apply(self, data: bytes) -> list[tuple[float, bytes, list[int]]]:
        """The chunks to write: (pause before it, bytes, offsets in it of damaged bytes: flipped,
        duplicated, or the byte after a dropped one)."""
        buf = bytearray(data)
        n = len(buf)
        flipped: set[int] = set()
        for bit in self._flips.take(8 * n):
            buf[bit // 8] ^= 1 << (bit % 8)
            self.counts.flipped_bits += 1
            flipped.add(bit // 8)
        dropped = set(self._bytes["drop"].take(n))
        dup = set(self._bytes["dup"].take(n)) - dropped
        pauses = set(self._bytes["pause"].take(n))
        chunks: list[tuple[float, bytes, list[int]]] = []
        cur: bytearray = bytearray()
        damage: list[int] = []
        pause, last = 0.0, 0
        for i in sorted(flipped | dropped | dup | pauses):
            cur.extend(buf[last:i])
            last = i
            if i in pauses:  # the line stops before this byte
                chunks.append((pause, bytes(cur), damage))
                cur, damage, pause = bytearray(), [], self.spec.pause_s
                self.counts.pauses += 1
            if i in dropped:
                self.counts.dropped_bytes += 1
                damage.append(len(cur))  # the receiver sees the next byte where this one was
                last = i + 1
                continue
            if i in flipped or i in dup:
                damage.append(len(cur))
            cur.append(buf[i])
            last = i + 1
            if i in dup:
                cur.append(buf[i])
                self.counts.duplicated_bytes += 1
        cur.extend(buf[last:])
        chunks.append((pause, bytes(cur), damage))
        self.counts.bytes_in += n
        self.counts.bytes_out += sum(len(c) for _, c, _ in chunks)
        return [c for c in chunks if c[1] or c[0]]


@dataclass
class Resync:
    """Seconds from a damaged byte to the end of the next frame delivered intact after it (count, mean, max)."""

    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    _since: float | None = field(default=None, repr=False)

    def damaged(self, at: float) -> None:
        if self._since is None:
            self._since = at

    def frame(self, at: float) -> None:
        if self._since is not None:
            dt = max(0.0, at - self._since)
            self.count, self.total_s, self.max_s, self._since = self.count + 1, self.total_s + dt, max(self.max_s, dt), None

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.count, "mean_s": self.total_s / self.count if self.count else None, "max_s": self.max_s if self.count else None}


class _Direction:
    """One direction through the proxy: its injector, the chunks waiting for their time, and a
    mirror reader fed what the receiver gets, when it gets it."""

    def __init__(self, spec: FaultSpec, stream: int) -> None:
        self.injector = FaultInjector(spec, stream)
        self.queue: deque[tuple[float, bytes, list[int]]] = deque()  # (not before, bytes, damaged offsets)
        self.reader = Reader()
        self.resync = Resync()
        self.free_at = 0.0  # the line is paused until then

    def take(self, data: bytes, now: float) -> None:
        for pause, chunk, damage in self.injector.apply(data):
            if pause:
                self.free_at = max(self.free_at, now) + pause
            self.queue.append((max(self.free_at, now), chunk, damage))

    def written(self, n: int, now: float) -> None:
        """The head chunk's first `n` bytes reached the receiver at `now`: through the mirror reader."""
        at, chunk, damage = self.queue[0]
        pos = 0
        for cut in [c for c in damage if c < n] + [n]:
            for _ in self.reader.feed(chunk[pos:cut]):
                self.resync.frame(now)
            if cut < n:
                self.resync.damaged(now)
            pos = cut
        if n < len(chunk):
            self.queue[0] = (at, chunk[n:], [c - n for c in damage if c >= n])
        else:
            self.queue.popleft()


class FaultProxy(PtyDevice):
    """A pty (`port`) whose bytes reach `device_port`, and back, through a noisy line (`spec`)."""

    def __init__(self, device_port: str, spec: FaultSpec, link: str | None = None) -> None:
        self.device_port = device_port
        self.spec = spec
        self.directions = {name: _Direction(spec, k) for k, name in enumerate(DIRECTIONS)}
        try:
            self._dev = os.open(device_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            raise OSError(f"fault proxy: cannot open the device's port {device_port}: {exc.strerror}") from None
        if os.isatty(self._dev):
            tty.setraw(self._dev)
        self.error: str | None = None
        self._open(link)

    def report(self) -> dict[str, Any]:
        """What the proxy did and what the receivers' readers saw, per direction."""
        out: dict[str, Any] = {"spec": self.spec.as_dict()}
        for name, d in self.directions.items():
            s = d.reader.stats
            out[name] = {**d.injector.counts.__dict__, "frames_delivered": s.frames, "crc_rejected": s.crc_errors,
                         "header_rejected": s.header_errors, "resync": d.resync.as_dict()}  # fmt: skip
        return out

    def _pump(self, src: int, d: _Direction) -> bool:
        try:
            data = os.read(src, 4096)
        except BlockingIOError:
            return False
        except OSError:  # EIO: nobody on the other side (yet)
            return False
        if data:
            d.take(data, time.monotonic())
        return bool(data)

    def _flush(self, dst: int, d: _Direction) -> None:
        now = time.monotonic()
        while d.queue and d.queue[0][0] <= now:
            chunk = d.queue[0][1]
            try:
                n = os.write(dst, chunk) if chunk else 0
            except BlockingIOError:
                return
            except OSError:
                n = len(chunk)  # nobody reads: the bytes are gone, as on a wire
            d.written(n, time.monotonic())
            if n < len(chunk):
                return

    def _run(self) -> None:
        h2d, d2h = self.directions["host_to_device"], self.directions["device_to_host"]
        try:
            while not self._stop.is_set():
                want_w = [fd for fd, d in ((self._dev, h2d), (self._master, d2h)) if d.queue and d.queue[0][0] <= time.monotonic()]
                wait = min([POLL_S] + [max(0.0, d.queue[0][0] - time.monotonic()) for d in (h2d, d2h) if d.queue])
                select.select([self._master, self._dev], want_w, [], wait)
                self._pump(self._master, h2d)
                self._pump(self._dev, d2h)
                self._flush(self._dev, h2d)
                self._flush(self._master, d2h)
        except Exception as exc:  # noqa: BLE001 - the soak reports a dead proxy instead of hanging
            self.error = f"fault proxy stopped: {exc!r}"
        finally:
            os.close(self._dev)
