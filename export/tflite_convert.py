"""ONNX -> float32 and full-integer int8 TFLite with onnx2tf, plus checks read from the flatbuffers.

onnx2tf lays the input out as TensorFlow does, (1, window, leads) (NWC), while ONNX and torch
take (1, leads, window). The int8 model has int8 input and output and per-channel conv weights,
calibrated on z-scored training windows (so mean 0 / std 1, no further normalisation).
onnx2tf runs in a temporary directory (it rewrites its input ONNX file in place and writes a
SavedModel and several .tflite files) with its output sent to a log there; only the two models
are copied out. Conversion changes the working directory and file descriptors 1 and 2 while it
runs, so it must not run in two threads at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from pipeline.util.atomic import atomic_target
from pipeline.util.console import without_noise_lines
from pipeline.inference.classifiers import select_leads
from pipeline.data.labels import NO_CLASS_Y
from pipeline.signal.preprocess import quantize_input

from .onnx_export import ANSI_CODES, INPUT_NAME, ExportError, _cause, onnx_logits

FLOAT_NAME = "model_float.tflite"
INT8_NAME = "model_int8.tflite"
_ONNX2TF_FLOAT = "model_float32.tflite"
_ONNX2TF_INT8 = "model_full_integer_quant.tflite"  # int8 in and out; "integer_quant" keeps float I/O
_CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


@dataclass
class QuantParams:
    """Affine int8 quantization: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


@dataclass
class TfliteModels:
    """The converted models and the int8 model's input and output quantization."""

    float_path: Path
    int8_path: Path
    input_q: QuantParams
    output_q: QuantParams


class WindowSet(Protocol):
    """What `calibration_windows` needs of a data set (`pipeline.data.dataset.Dataset` has it)."""

    X: np.ndarray
    y: np.ndarray
    split: np.ndarray
    label_names: tuple[str, ...]

    @property
    def leads(self) -> list[str]: ...


# --------------------------------------------------------------------------- calibration data


def _class_shares(n: int, classes: np.ndarray) -> dict[int, int]:
    """`n` split as evenly as possible over `classes` (the first ones take the remainder)."""
    base, extra = divmod(n, len(classes))
    return {int(c): base + (i < extra) for i, c in enumerate(classes)}


def calibration_windows(ds: WindowSet, n: int = 200, seed: int = 0, leads: list[str] | None = None) -> np.ndarray:
    """`n` train-split windows (n, leads, window) float32, an equal share from every class present.

    A class with fewer windows than its share is drawn with replacement. `leads` selects leads by
    name (default: all of the data set's). ExportError("int8 calibration") if the train split
    holds fewer than two classes or `n` is too small to give each class a window.
    """
    train = np.flatnonzero((np.asarray(ds.split) == "train") & (np.asarray(ds.y) != NO_CLASS_Y))  # windows of no class: not a class
    y = np.asarray(ds.y)[train]
    classes = np.unique(y)
    names = [ds.label_names[int(c)] for c in classes]
    if len(classes) < 2:
        raise ExportError("int8 calibration", f"a calibration set of one class ({names or 'no train windows'}); the train split needs at least two classes")
    if n < len(classes):
        raise ExportError("int8 calibration", f"n={n} windows cannot hold one of each of {len(classes)} classes")
    rng = np.random.default_rng(seed)
    picks = []
    for c, share in _class_shares(n, classes).items():
        pool = train[y == c]
        picks.append(rng.choice(pool, size=share, replace=share > len(pool)))
    idx = np.concatenate(picks)
    order = np.argsort(idx, kind="stable")  # read the memory map in file order, then restore the class order
    X = np.empty((len(idx), *ds.X.shape[1:]), dtype=np.float32)
    X[order] = np.asarray(ds.X[idx[order]], dtype=np.float32)
    return np.ascontiguousarray(select_leads(X, ds.leads, leads, "calibration data set") if leads else X)


def _calibration_nwc(calib: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Calibration windows (n, leads, window) as TensorFlow sees the input, (n, window, leads)."""
    c = np.asarray(calib, dtype=np.float32)
    if c.ndim != 3 or c.shape[1:] != tuple(in_shape[1:]) or len(c) == 0:
        raise ExportError("int8 calibration", f"calibration windows of shape {c.shape}; the model takes (n>0, {in_shape[1]}, {in_shape[2]})")
    if not np.isfinite(c).all():
        raise ExportError("int8 calibration", "calibration windows hold NaN or infinite values")
    if float(c.std()) == 0.0:
        raise ExportError("int8 calibration", "calibration windows are constant; no activation ranges can be measured")
    return np.ascontiguousarray(c.transpose(0, 2, 1))


# --------------------------------------------------------------------------- running onnx2tf


def _onnx_io(path: Path) -> tuple[tuple[int, ...], int]:
    """(input shape, number of classes) of an ONNX classifier, or ExportError("onnx2tf") if unreadable."""
    import onnx

    try:
        graph = onnx.load(str(path)).graph
        in_dims = tuple(d.dim_value for d in graph.input[0].type.tensor_type.shape.dim)
        out_dims = tuple(d.dim_value for d in graph.output[0].type.tensor_type.shape.dim)
    except Exception as exc:  # DecodeError, IndexError, OSError, ...
        raise ExportError("onnx2tf", f"cannot read the ONNX model {path} ({_cause(exc)})") from exc
    if len(in_dims) != 3 or len(out_dims) != 2 or 0 in in_dims + out_dims:
        raise ExportError("onnx2tf", f"{path}: expected static input (1, leads, window) and output (1, classes), got {in_dims} and {out_dims}")
    return in_dims, out_dims[1]


@contextlib.contextmanager
def _sandbox(work: Path, log: Path) -> Iterator[None]:
    """Run inside `work` with stdout/stderr (Python and C level) sent to `log` and this venv's bin/ first on PATH."""
    old_cwd, old_path = os.getcwd(), os.environ.get("PATH", "")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), old_path])
        with open(log, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            os.chdir(work)
            try:
                yield
            finally:
                f.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        os.chdir(old_cwd)
        os.environ["PATH"] = old_path


def _log_tail(log: Path, lines: int = 6) -> str:
    """The error lines of an onnx2tf log (else its last lines), without colour codes."""
    text = ANSI_CODES.sub("", log.read_text(errors="replace")) if log.exists() else ""
    rows = [r.strip() for r in text.splitlines() if r.strip()]
    errors = [r for r in rows if re.search(r"error|exception|traceback", r, re.IGNORECASE)]
    return " | ".join((errors or rows)[-lines:])[:1200]


def _run_onnx2tf(model: Path, calib_npy: Path, out: Path, log: Path) -> None:
    """onnx2tf.convert: float32 plus per-channel full-integer int8 (int8 input and output), quietly."""
    try:
        with _sandbox(model.parent, log):
            if shutil.which("onnxsim") is None:
                raise ExportError("onnx2tf", f"the onnxsim program is not on PATH (onnx2tf runs it); install onnxsim beside {sys.executable}")
            import onnx2tf

            onnx2tf.convert(
                input_onnx_file_path=str(model),
                output_folder_path=str(out),
                output_integer_quantized_tflite=True,
                quant_type="per-channel",
                input_quant_dtype="int8",
                output_quant_dtype="int8",
                custom_input_op_name_np_data_path=[[INPUT_NAME, str(calib_npy), 0.0, 1.0]],
                non_verbose=True,
            )
    except ExportError:
        raise
    except (Exception, SystemExit) as exc:  # onnx2tf calls sys.exit(1) after logging many of its errors
        raise ExportError("onnx2tf", f"conversion of {model.name} failed ({_cause(exc, 200)}); log: {_log_tail(log)}") from exc


def _produced(out: Path, name: str, log: Path) -> Path:
    """A file onnx2tf should have written, or ExportError("onnx2tf")."""
    path = out / name
    if not path.is_file():
        found = sorted(p.name for p in out.glob("*.tflite")) if out.is_dir() else []
        raise ExportError("onnx2tf", f"no {name} was written (found {found}); log: {_log_tail(log)}")
    return path


def _copy_atomic(src: Path, dst: Path) -> Path:
    """Copy `src` to `dst` through a temp file beside `dst`."""
    with atomic_target(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def convert(onnx_path: Path, calib: np.ndarray, out_dir: Path) -> TfliteModels:
    """ONNX -> `out_dir`/model_float.tflite and model_int8.tflite (int8 (1, window, leads) in, int8 (1, classes) out).

    `calib` holds z-scored calibration windows (n, leads, window), e.g. from `calibration_windows`.
    Both models are checked (input/output dtype and shape, per-channel int8 conv weights) before
    anything is written to `out_dir`.
    """
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    in_shape, n_classes = _onnx_io(onnx_path)
    calib_nwc = _calibration_nwc(calib, in_shape)
    tf_in, tf_out = (1, in_shape[2], in_shape[1]), (1, n_classes)
    with tempfile.TemporaryDirectory(prefix="ecg-edge-onnx2tf-") as tmp:
        work = Path(tmp)
        model, calib_npy, out, log = work / "model.onnx", work / "calib.npy", work / "tf", work / "onnx2tf.log"
        shutil.copyfile(onnx_path, model)  # onnx2tf overwrites its input with the simplified graph
        np.save(calib_npy, calib_nwc)
        _run_onnx2tf(model, calib_npy, out, log)
        float_src, int8_src = _produced(out, _ONNX2TF_FLOAT, log), _produced(out, _ONNX2TF_INT8, log)
        _check_io(float_src, "float TFLite", np.float32, tf_in, tf_out)
        _check_io(int8_src, "int8 TFLite", np.int8, tf_in, tf_out)
        _check_per_channel(int8_src)
        input_q, output_q = io_quantization(int8_src)
        out_dir.mkdir(parents=True, exist_ok=True)
        float_path = _copy_atomic(float_src, out_dir / FLOAT_NAME)
        int8_path = _copy_atomic(int8_src, out_dir / INT8_NAME)
    return TfliteModels(float_path, int8_path, input_q, output_q)


# --------------------------------------------------------------------------- checks and running


def _interpreter(path: Path) -> Any:
    """An allocated LiteRT interpreter for a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    with without_noise_lines():
        interp.allocate_tensors()
    return interp


def _io(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """LiteRT's details of the (single) input and output tensor."""
    interp = _interpreter(path)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise ExportError("tflite check", f"{path.name} has {len(ins)} inputs and {len(outs)} outputs, expected one of each")
    return ins[0], outs[0]


def _check_io(path: Path, what: str, dtype: type, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
    """ExportError("tflite check") naming the input/output dtype or shape that differs from the contract."""
    inp, out = _io(path)
    problems = []
    for side, detail, shape in (("input", inp, in_shape), ("output", out, out_shape)):
        got = (np.dtype(detail["dtype"]).name, tuple(int(d) for d in detail["shape"]))
        want = (np.dtype(dtype).name, tuple(shape))
        if got != want:
            problems.append(f"{side} is {got[0]} {got[1]}, expected {want[0]} {want[1]}")
    if problems:
        raise ExportError("tflite check", f"{what} ({path.name}): " + "; ".join(problems))


def io_quantization(path: Path) -> tuple[QuantParams, QuantParams]:
    """Input and output quantization of an int8 model."""
    inp, out = _io(path)
    (si, zi), (so, zo) = inp["quantization"], out["quantization"]
    if not (si > 0 and so > 0):
        raise ExportError("tflite check", f"{path.name} input/output are not quantized (scales {si}, {so})")
    return QuantParams(float(si), int(zi)), QuantParams(float(so), int(zo))


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _model(path: Path) -> Any:
    """The flatbuffer root of a .tflite file."""
    return _schema().Model.GetRootAsModel(Path(path).read_bytes(), 0)


def _op_names(model: Any) -> list[str]:
    """Name of every operator code of the model (custom ops as "CUSTOM:<name>")."""
    schema = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if code.CustomCode():
            out.append(f"CUSTOM:{code.CustomCode().decode()}")
        else:  # codes above 127 live in BuiltinCode only; the deprecated byte saturates at 127
            out.append(names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), f"UNKNOWN_{code.BuiltinCode()}"))
    return out


def _operators(model: Any) -> Iterator[tuple[str, Any, Any]]:
    """(op name, operator, subgraph) for every operator of every subgraph, in execution order."""
    names = _op_names(model)
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            yield names[op.OpcodeIndex()], op, graph


def tflite_ops(path: Path) -> list[str]:
    """Builtin op name of every operator in the model, in execution order, read from the flatbuffer."""
    return [name for name, _, _ in _operators(_model(path))]


@dataclass
class ConvWeightQuant:
    """Quantization of one convolution's weight tensor."""

    op: str
    tensor: str
    channels: int  # output channels (size of the quantized dimension)
    scales: int
    quantized_dimension: int


def conv_weight_quantization(path: Path) -> list[ConvWeightQuant]:
    """Weight quantization of every CONV_2D / DEPTHWISE_CONV_2D, read from the flatbuffer."""
    result = []
    for name, op, graph in _operators(_model(path)):
        if name not in _CONV_OPS:
            continue
        tensor = graph.Tensors(op.Inputs(1))
        q = tensor.Quantization()
        qdim = q.QuantizedDimension() if q is not None else 0
        channel_axis = 0 if name == "CONV_2D" else 3  # OHWI for CONV_2D, 1HWO for DEPTHWISE_CONV_2D
        result.append(ConvWeightQuant(name, tensor.Name().decode(), int(tensor.Shape(channel_axis)), q.ScaleLength() if q is not None else 0, qdim))
    return result


def _check_per_channel(path: Path) -> None:
    """ExportError("int8 per-channel") unless every conv weight has one scale per output channel."""
    convs = conv_weight_quantization(path)
    wrong = [c for c in convs if c.scales != c.channels]
    if wrong:
        shown = ", ".join(f"{c.tensor} ({c.scales} scales for {c.channels} channels)" for c in wrong[:3])
        raise ExportError("int8 per-channel", f"{path.name}: conv weights are not quantized per channel: {shown}")


def tflite_logits(path: Path, windows: np.ndarray) -> np.ndarray:
    """LiteRT logits (N, classes) of windows (N, leads, window); int8 models quantize in and dequantize out."""
    interp = _interpreter(path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for w in np.asarray(windows, dtype=np.float32):
        x = np.ascontiguousarray(w.T[None])  # (leads, window) -> (1, window, leads)
        if inp["dtype"] == np.int8:
            x = quantize_input(x, *inp["quantization"])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])[0]
        if out["dtype"] == np.int8:
            scale, zero_point = out["quantization"]
            y = (y.astype(np.float64) - zero_point) * scale
        rows.append(np.asarray(y, dtype=np.float64))
    return np.stack(rows)


def tflite_float_vs_onnx(float_path: Path, onnx_path: Path, windows: np.ndarray) -> float:
    """Largest absolute logit difference between the float TFLite model and onnxruntime over `windows` (N, leads, window)."""
    return float(np.max(np.abs(tflite_logits(float_path, windows) - onnx_logits(onnx_path, windows))))
