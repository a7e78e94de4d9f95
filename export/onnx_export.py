"""PyTorch checkpoint -> ONNX (static shapes, weights embedded), checked and compared with torch.

The graph has one input `x` of shape (1, leads, window) float32 and one output `logits` of
shape (1, n_classes). Batch norm folds into the convolutions during export.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from pipeline.util.atomic import atomic_target
from pipeline.models.checkpoint import Checkpoint

INPUT_NAME = "x"
OUTPUT_NAME = "logits"
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")  # colour codes some tools put in their messages


class ExportError(RuntimeError):
    """A failed export or conversion step: `ExportError(step, cause)` reads "step: cause".

    `step` names the step ("onnx export", "onnx check", "onnxruntime parity", "onnx2tf",
    "int8 calibration", "tflite check", ...); one argument is taken as the whole message.
    """

    def __init__(self, step: str, cause: str | None = None) -> None:
        super().__init__(step if cause is None else f"{step}: {cause}")
        self.step = step if cause is not None else step.partition(":")[0]


def _root(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (explicit causes first, then implicit context)."""
    seen = {id(exc)}
    while (nxt := exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def _cause(exc: BaseException, limit: int = 400) -> str:
    """`Type: message` of the exception's root cause (colour codes and line breaks removed), cut to `limit` characters."""
    root = _root(exc)
    text = " ".join(ANSI_CODES.sub("", str(root)).split())
    kind = type(exc).__name__ if root is exc else f"{type(exc).__name__} from {type(root).__name__}"
    return f"{kind}: {text[:limit]}" if text else kind


def input_shape(ckpt: Checkpoint) -> tuple[int, int, int]:
    """The ONNX input shape (1, leads, window) of a checkpoint's model."""
    return (1, ckpt.in_leads, ckpt.spec.window)


def _torch_export(model: torch.nn.Module, dummy: torch.Tensor, path: Path) -> None:
    """torch.onnx.export of `model` (eval mode, no grad) into one self-contained file."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecations inside the exporter, not ours to fix
            torch.onnx.export(
                model, (dummy,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamo=True, external_data=False, verbose=False,
            )  # fmt: skip
    finally:
        model.train(was_training)


def _static_dims(value_info: object) -> tuple[int | str, ...]:
    """Dimensions of an ONNX value: ints where static, the symbol (or "?") where not."""
    dims = value_info.type.tensor_type.shape.dim  # type: ignore[attr-defined]
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def check_onnx(path: Path, in_shape: tuple[int, ...], n_classes: int) -> None:
    """onnx.checker (with shape inference) plus the input/output contract; ExportError("onnx check") if broken."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises several types (DecodeError, ValidationError, ...)
        raise ExportError("onnx check", f"{path} is not a valid ONNX model ({_cause(exc)})") from exc
    ins = {i.name: _static_dims(i) for i in model.graph.input}
    outs = {o.name: _static_dims(o) for o in model.graph.output}
    want_in, want_out = {INPUT_NAME: tuple(in_shape)}, {OUTPUT_NAME: (1, n_classes)}
    if ins != want_in or outs != want_out:
        raise ExportError("onnx check", f"{path} has inputs {ins} and outputs {outs}, expected {want_in} and {want_out}")
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ExportError("onnx check", f"{path} keeps weights in external files ({external[:3]})")


def export_onnx(ckpt: Checkpoint, path: Path) -> Path:
    """Write `ckpt.model` as ONNX to `path` (atomically: a temp file beside it, checked, then renamed)."""
    path = Path(path)
    shape = input_shape(ckpt)
    with atomic_target(path) as tmp:
        try:
            _torch_export(ckpt.model, torch.zeros(shape, dtype=torch.float32), tmp)
        except Exception as exc:  # torch.onnx wraps failures in many types
            raise ExportError("onnx export", f"torch.onnx.export of {ckpt.model_config.get('name')!r} failed ({_cause(exc)})") from exc
        check_onnx(tmp, shape, len(ckpt.label_names))
    return path


def _check_windows(windows: np.ndarray, shape: tuple[int, ...], step: str) -> np.ndarray:
    """`windows` as float32 (N, leads, window) matching the model input `shape`, or ExportError(step)."""
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim != 3 or w.shape[1:] != tuple(shape[1:]) or len(w) == 0:
        raise ExportError(step, f"windows of shape {w.shape}; expected (N>0, {shape[1]}, {shape[2]})")
    if not np.isfinite(w).all():
        raise ExportError(step, "windows hold NaN or infinite values")
    return w


def onnx_logits(onnx_path: Path, windows: np.ndarray) -> np.ndarray:
    """onnxruntime (CPU) logits (N, n_classes) of windows (N, leads, window), one at a time (static batch 1)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        shape = tuple(sess.get_inputs()[0].shape)
        w = _check_windows(windows, shape, "onnxruntime parity")
        return np.concatenate([sess.run([OUTPUT_NAME], {INPUT_NAME: w[i : i + 1]})[0] for i in range(len(w))])
    except ExportError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError("onnxruntime parity", f"cannot run {onnx_path} ({_cause(exc)})") from exc


def torch_logits(ckpt: Checkpoint, windows: np.ndarray, batch: int = 64) -> np.ndarray:
    """The checkpoint model's logits (N, n_classes) on windows (N, leads, window)."""
    w = _check_windows(windows, input_shape(ckpt), "torch logits")
    with torch.no_grad():
        return np.concatenate([ckpt.model(torch.tensor(w[i : i + batch])).numpy() for i in range(0, len(w), batch)])


def onnx_vs_torch(ckpt: Checkpoint, onnx_path: Path, windows: np.ndarray) -> float:
    """Largest absolute logit difference between onnxruntime and torch over `windows` (N, leads, window)."""
    w = _check_windows(windows, input_shape(ckpt), "onnxruntime parity")
    return float(np.max(np.abs(onnx_logits(onnx_path, w).astype(np.float64) - torch_logits(ckpt, w))))
