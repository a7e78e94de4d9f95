"""PAD folded into the convolution that reads it, for the native backend (export/native_model.py).

onnx2tf writes a 1-D convolution with padding as PAD (zero point) -> RESHAPE to NHWC -> CONV_2D
(VALID). The native CONV_2D treats every tap outside its input as the zero point already (its
leading padding `pad_w`; taps past the end likewise), so the pair PAD + RESHAPE can go: the
convolution reads the unpadded tensor with the PAD's leading width as its own padding. That saves
the PAD's copy and its output tensor, and two op records in the blob. Same sums: a padded tap holds
the zero point, i.e. input + input_offset = 0, in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from ai_edge_litert import schema_py_generated as schema


@dataclass(frozen=True)
class PadFold:
    """CONV_2D `conv` reads tensor `source` (shape [n, width, c] or [n, 1, width, c]) with `before`
    more leading padding in width; the PAD and RESHAPE ops `skipped` are not translated."""

    conv: int
    source: int
    width: int
    before: int
    skipped: tuple[int, int]


def pad_folds(graph: schema.SubGraphT, op_name: Callable[[schema.OperatorT], str], shape: Callable[[int], tuple[int, ...]],
              quant: Callable[[int], tuple[np.ndarray, np.ndarray]], paddings: Callable[[int], np.ndarray | None]) -> dict[int, PadFold]:
    """The foldable PAD -> RESHAPE -> CONV_2D chains, by convolution index. `shape`, `quant` (scales,
    zero points) and `paddings` (a constant [rank, 2] array or None) describe tensors by index."""
    ops = graph.operators or []
    producer = {t: i for i, op in enumerate(ops) for t in op.outputs}
    readers: dict[int, int] = {}
    for op in ops:
        for t in op.inputs:
            readers[t] = readers.get(t, 0) + 1
    for t in graph.outputs:
        readers[t] = readers.get(t, 0) + 1
    folds: dict[int, PadFold] = {}
    for i, op in enumerate(ops):
        if op_name(op) != "CONV_2D" or not isinstance(op.builtinOptions, schema.Conv2DOptionsT) or op.builtinOptions.padding != schema.Padding.VALID:
            continue
        reshaped = op.inputs[0]
        j = producer.get(reshaped)
        if j is None or op_name(ops[j]) != "RESHAPE" or readers.get(reshaped) != 1:
            continue
        padded = ops[j].inputs[0]
        k = producer.get(padded)
        if k is None or op_name(ops[k]) != "PAD" or readers.get(padded) != 1 or len(ops[k].inputs) != 2:
            continue
        source, pads = ops[k].inputs[0], paddings(ops[k].inputs[1])
        src, dst = shape(source), shape(reshaped)
        if pads is None or len(dst) != 4 or dst[1] != 1 or (pads < 0).any():
            continue
        axis = {3: 1, 4: 2}.get(len(src))  # the width axis of [n, w, c] or [n, 1, w, c]
        if axis is None or src[0] != dst[0] or src[-1] != dst[3] or (len(src) == 4 and src[1] != 1) or pads.shape != (len(src), 2):
            continue
        others = np.delete(pads, axis, axis=0)
        before, after = int(pads[axis, 0]), int(pads[axis, 1])
        if others.any() or src[axis] + before + after != dst[2] or not _same_quant(quant(padded), quant(reshaped)) or not _same_quant(quant(source), quant(padded)):
            continue
        folds[i] = PadFold(i, source, int(src[axis]), before, (k, j))
    return folds


def _same_quant(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return len(a[0]) == len(b[0]) == 1 and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
