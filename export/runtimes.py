"""One interface over every runtime the parity report compares.

Each runtime maps windows `(N, leads, window)` float32 (z-scored, as the device computes them)
to logits `(N, classes)`; int8 runtimes also keep their raw int8 outputs so bit-identity can
be checked. Inputs are quantized exactly as the device does (`pipeline.signal.preprocess.quantize_input`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline.models.checkpoint import Checkpoint
from pipeline.util.console import without_noise_lines
from pipeline.signal.preprocess import quantize_input

TFLM_ARENA_BYTES = 256 * 1024  # generous for the host runtime; the budget reports what is really needed


@dataclass
class RuntimeResult:
    name: str
    logits: np.ndarray  # float, dequantized for int8 runtimes
    raw_int8: np.ndarray | None = None
    notes: dict[str, object] = field(default_factory=dict)


def _each(windows: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(w) for w in windows]) if len(windows) else np.zeros((0, 0))


def run_torch(ckpt: Checkpoint, windows: np.ndarray) -> RuntimeResult:
    with torch.no_grad():
        logits = ckpt.model(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))).numpy()
    return RuntimeResult("torch", logits.astype(np.float64))


def run_onnx(path: Path, windows: np.ndarray) -> RuntimeResult:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    logits = _each(windows, lambda w: sess.run(None, {name: w[None].astype(np.float32)})[0][0])
    return RuntimeResult("onnxruntime", logits.astype(np.float64))


def _nwc(w: np.ndarray) -> np.ndarray:
    """(leads, window) -> (1, window, leads): the layout onnx2tf gives the TFLite input."""
    return np.ascontiguousarray(w.T[None])


def _quant(detail: dict) -> tuple[float, int]:
    """(scale, zero point) from LiteRT's or TFLM's tensor details."""
    if "quantization_parameters" in detail and "quantization" not in detail:  # TFLM's form
        q = detail["quantization_parameters"]
        return float(q["scales"][0]), int(q["zero_points"][0])
    scale, zp = detail["quantization"]
    return float(scale), int(zp)


def run_litert(path: Path, windows: np.ndarray, reference_kernels: bool) -> RuntimeResult:
    """LiteRT on a float or int8 model; `reference_kernels` selects the builtin reference op resolver."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
    interp = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
    with without_noise_lines():
        interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    int8 = inp["dtype"] == np.int8
    raw: list[np.ndarray] = []

    def one(w: np.ndarray) -> np.ndarray:
        x = _nwc(w)
        interp.set_tensor(inp["index"], quantize_input(x, *_quant(inp)) if int8 else x.astype(np.float32))
        interp.invoke()
        y = interp.get_tensor(out["index"])[0]
        if out["dtype"] == np.int8:
            raw.append(y.copy())
            scale, zp = _quant(out)
            return (y.astype(np.float64) - zp) * scale
        return y.astype(np.float64)

    logits = _each(windows, one)
    kind = "int8" if int8 else "float"
    name = f"litert_{kind}_{'reference' if reference_kernels else 'default'}"
    return RuntimeResult(name, logits, np.stack(raw) if raw else None)


def _tflm(path: Path, arena_bytes: int = TFLM_ARENA_BYTES):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(Path(path).read_bytes(), arena_size=arena_bytes)


def _tflm_invoke(interp, x: np.ndarray) -> np.ndarray:
    interp.set_input(x, 0)
    interp.invoke()
    return np.asarray(interp.get_output(0))[0].copy()


def run_tflm(path: Path, windows: np.ndarray, arena_bytes: int = TFLM_ARENA_BYTES) -> RuntimeResult:
    """TensorFlow Lite Micro's own kernels through the `tflite-micro` Python runtime (int8 model)."""
    interp = _tflm(path, arena_bytes)
    in_q, out_q = _quant(interp.get_input_details(0)), _quant(interp.get_output_details(0))
    raw = [_tflm_invoke(interp, quantize_input(_nwc(w), *in_q)) for w in windows]
    logits = np.stack([(y.astype(np.float64) - out_q[1]) * out_q[0] for y in raw]) if raw else np.zeros((0, 0))
    return RuntimeResult("tflm", logits, np.stack(raw) if raw else None)


def run_tflm_int8(path: Path, inputs: np.ndarray, arena_bytes: int = TFLM_ARENA_BYTES) -> np.ndarray:
    """TFLM's int8 outputs `(n, outputs)` for int8 inputs given flat `(n, elements)` in the model's layout."""
    interp = _tflm(path, arena_bytes)
    shape = tuple(interp.get_input_details(0)["shape"])
    outs = [_tflm_invoke(interp, np.asarray(x, dtype=np.int8).reshape(shape)).reshape(-1) for x in inputs]
    return np.stack(outs) if outs else np.zeros((0, 0), dtype=np.int8)


def first_divergence(path: Path, window: np.ndarray) -> dict[str, object]:
    """Where TFLM and LiteRT's reference kernels part on one window: the first operator whose output differs.

    Both interpreters keep every intermediate tensor; the operators are visited in execution order.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    ref = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF, experimental_preserve_all_tensors=True)
    with without_noise_lines():
        ref.allocate_tensors()
    inp = ref.get_input_details()[0]
    x = quantize_input(_nwc(window), *_quant(inp))
    ref.set_tensor(inp["index"], x)
    ref.invoke()
    micro = runtime.Interpreter.from_bytes(Path(path).read_bytes(), arena_size=4 * TFLM_ARENA_BYTES, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    micro.set_input(x, 0)
    micro.invoke()
    for op in ref._get_ops_details():
        for t in op["outputs"]:
            a = ref.get_tensor(t)
            b = np.asarray(micro.GetTensor(int(t), 0)["tensor_data"]).reshape(a.shape)
            if not np.array_equal(a, b):
                return {"op_index": int(op["index"]), "op": op["op_name"], "max_lsb": int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())}
    return {}
