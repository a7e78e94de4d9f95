"""What an int8 `.tflite` costs on a microcontroller: flatbuffer, weights, TFLM arena, ops.

Ops are read from the flatbuffer with LiteRT's generated schema module; the arena is measured
with TensorFlow Lite Micro's own Python runtime (its reference kernels, on this 64-bit host).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable

from ai_edge_litert import schema_py_generated as schema

TFLM_BUILTINS: frozenset[str] = frozenset(
    {
        "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
        "FULLY_CONNECTED", "RESHAPE", "PAD", "QUANTIZE", "DEQUANTIZE", "SOFTMAX", "SQUEEZE",
        "EXPAND_DIMS", "MUL", "SUB", "RELU", "LOGISTIC", "CONCATENATION", "STRIDED_SLICE",
    }
)  # fmt: skip
"""The TensorFlow Lite Micro builtins this project allows in a model for the device."""

ARENA_FLOOR = 512  # the runtime segfaults under ~464 B whatever the model; no model fits that anyway
MAX_ARENA_BYTES = 64 * 1024 * 1024  # far beyond any target; a model failing here does not load at all

_OP_NAMES: dict[int, str] = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


class BudgetError(ValueError):
    """The model cannot run on the device: an op outside TFLM_BUILTINS, or TFLM cannot load it."""


def _model(tflite: bytes) -> schema.Model:
    if len(tflite) < 8 or not schema.Model.ModelBufferHasIdentifier(tflite, 0):
        raise BudgetError("not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    return schema.Model.GetRootAs(tflite, 0)


def _opcode_name(code: schema.OperatorCode) -> str:
    """Builtin name, or the custom code (e.g. 'FlexErf') for custom and Flex ops."""
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.CustomCode()
        return custom.decode("utf-8", "replace") if custom else "CUSTOM"
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def op_names(tflite: bytes) -> list[str]:
    """The op name of every operator of every subgraph, in execution order."""
    model = _model(tflite)
    codes = [_opcode_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    out = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        out += [codes[graph.Operators(j).OpcodeIndex()] for j in range(graph.OperatorsLength())]
    return out


def _buffer_bytes(buf: schema.Buffer) -> int:
    """Bytes of a buffer, inline or (models over 2 GB) stored after the flatbuffer."""
    return buf.DataLength() or (buf.Size() if buf.Offset() > 1 else 0)


def weight_bytes(tflite: bytes) -> int:
    """Bytes of constant tensors: buffers with data that tensors refer to (metadata excluded)."""
    model = _model(tflite)
    used = set()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        used |= {graph.Tensors(t).Buffer() for t in range(graph.TensorsLength())}
    return sum(_buffer_bytes(model.Buffers(i)) for i in sorted(used) if 0 < i < model.BuffersLength())


_PROBE_WORKER = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model, n_inputs = open(sys.argv[1], "rb").read(), int(sys.argv[2])
for line in sys.stdin:
    try:
        interp = runtime.Interpreter.from_bytes(model, arena_size=int(line))
        for i in range(n_inputs):
            d = interp.get_input_details(i)
            interp.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
        interp.invoke()
        ok = 1
    except RuntimeError:
        ok = 0
    print(ok, flush=True)
"""


class _ArenaProbe:
    """Asks a worker process whether the model allocates and runs one inference with an arena size.

    TFLM's failure paths can crash the process (the runtime segfaults below ~464 B, and so do
    some kernels' Prepare after a failed scratch allocation), so the probing runs in a child; a
    child that dies counts as "does not allocate" and is replaced on the next probe.
    """

    def __init__(self, tflite: bytes, workdir: Path) -> None:
        self.model = workdir / "model.tflite"
        self.model.write_bytes(tflite)
        self.n_inputs = _model(tflite).Subgraphs(0).InputsLength()
        self.log = (workdir / "tflm.log").open("w+b")
        self.proc: subprocess.Popen | None = None

    def _spawn(self) -> subprocess.Popen:
        cmd = [sys.executable, "-c", _PROBE_WORKER, str(self.model), str(self.n_inputs)]
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)

    def __call__(self, arena: int) -> bool:
        self.proc = self.proc or self._spawn()
        try:
            self.proc.stdin.write(f"{arena}\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
        except BrokenPipeError:
            answer = ""
        if answer not in ("0", "1"):
            self._stop()
        return answer == "1"

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdin.close()
            self.proc.stdout.close()
            self.proc = None

    def close(self) -> str:
        """Stop the worker; returns the last lines TFLM printed."""
        self._stop()
        self.log.seek(0)
        lines = [ln.strip() for ln in self.log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        self.log.close()
        return " | ".join(list(dict.fromkeys(lines))[-3:])


def _smallest_arena(allocates: Callable[[int], bool]) -> int | None:
    """Double from ARENA_FLOOR until `allocates`, then bisect; None if even MAX_ARENA_BYTES fails."""
    hi = ARENA_FLOOR
    while not allocates(hi):
        if hi >= MAX_ARENA_BYTES:
            return None
        hi *= 2
    lo = hi // 2 + 1 if hi > ARENA_FLOOR else ARENA_FLOOR
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if allocates(mid) else (mid + 1, hi)
    return hi


def tflm_arena_bytes(tflite: bytes) -> int:
    """Smallest tensor arena with which TFLM allocates the model and runs an inference, by bisection.

    The `tflite_micro` Python runtime has no call returning arena usage (`print_allocations()`
    only prints the RecordingMicroAllocator's totals to stderr), so this bisects over
    `Interpreter.from_bytes(..., arena_size=n)` in a worker process (`_ArenaProbe`), never below
    ARENA_FLOOR. The figure is for TFLM's reference kernels on this 64-bit host: a 32-bit MCU
    needs a little less (smaller pointers), optimized kernels (CMSIS-NN, ESP-NN) may add scratch
    buffers; leave a margin.
    """
    with tempfile.TemporaryDirectory(prefix="ecg-arena-") as tmp:
        probe = _ArenaProbe(tflite, Path(tmp))
        try:
            arena = _smallest_arena(probe)
        finally:
            said = probe.close()
    if arena is None:
        raise BudgetError(f"TensorFlow Lite Micro cannot run the model even with a {MAX_ARENA_BYTES} B arena (TFLM: {said})")
    return arena


def _check_ops(names: list[str]) -> None:
    bad = sorted(set(names) - TFLM_BUILTINS)
    if bad:
        raise BudgetError("; ".join(f"op {op} is not a TensorFlow Lite Micro builtin" for op in bad))


def budget(tflite: bytes, macs: int | None = None) -> dict:
    """Flatbuffer, weight and arena bytes, MACs (as given) and ops; BudgetError for ops TFLM lacks."""
    names = op_names(tflite)
    _check_ops(names)
    return {
        "flatbuffer_bytes": len(tflite),
        "weight_bytes": weight_bytes(tflite),
        "arena_bytes": tflm_arena_bytes(tflite),
        "macs": None if macs is None else int(macs),
        "ops": sorted(set(names)),
        "op_counts": dict(sorted(Counter(names).items())),
    }
