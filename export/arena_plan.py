"""The activation memory plan of the native backend: greedy placement of buffers by lifetime.

Each buffer is (bytes, first op, last op); buffers live at the same time never share bytes. The
scheme is TFLM's GreedyMemoryPlanner (largest first), tried in a few orders; the smallest arena wins.
"""

from __future__ import annotations

from .native_blob import ALIGN


def _place(buffers: list[tuple[int, int, int]], order: list[int]) -> list[int]:
    """Each buffer in `order` at the lowest aligned offset free of every placed buffer live with it."""
    offsets: list[int | None] = [None] * len(buffers)
    for k in order:
        size, first, last = buffers[k]
        busy = sorted(
            (o, o + buffers[j][0])
            for j, o in enumerate(offsets)
            if o is not None and buffers[j][1] <= last and first <= buffers[j][2]
        )
        at = 0
        for lo, hi in busy:
            if at + size <= lo:
                break
            at = max(at, -(-hi // ALIGN) * ALIGN)
        offsets[k] = at
    return [int(o) for o in offsets]  # type: ignore[arg-type]


_PLAN_ORDERS = (
    lambda b: (-b[0], b[1]),  # largest first: TFLM's GreedyMemoryPlanner
    lambda b: (-(b[2] - b[1]), -b[0]),  # longest-lived first
    lambda b: (-(b[2] - b[1] + 1) * b[0], -b[0]),  # largest size x lifetime first
    lambda b: (b[1], -b[0]),  # in execution order
)


def plan_arena(buffers: list[tuple[int, int, int]]) -> tuple[list[int], int]:
    """Greedy placement of (bytes, first op, last op) buffers; returns (offsets, arena bytes).

    The placement of _place under a few orders (TFLM's largest-first and three others), keeping
    the smallest arena; buffers whose lifetimes overlap never share bytes (checked).
    """
    best: tuple[int, list[int]] | None = None
    for key in _PLAN_ORDERS:
        placed = _place(buffers, sorted(range(len(buffers)), key=lambda k: (*key(buffers[k]), k)))
        total = max((placed[k] + buffers[k][0] for k in range(len(buffers))), default=0)
        if best is None or total < best[0]:
            best = (total, placed)
    assert best is not None
    total, placed = best
    for a in range(len(buffers)):  # the plan's invariant
        for c in range(a + 1, len(buffers)):
            live = buffers[a][1] <= buffers[c][2] and buffers[c][1] <= buffers[a][2]
            disjoint = placed[a] + buffers[a][0] <= placed[c] or placed[c] + buffers[c][0] <= placed[a]
            if live and not disjoint:
                raise AssertionError(f"memory plan overlaps buffers {a} and {c}")
    return placed, -(-total // ALIGN) * ALIGN
