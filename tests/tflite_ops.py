"""Small int8 TFLite models built directly with the flatbuffer object API, for kernel tests.

`Graph` assembles tensors and operators; the `*_model` functions build one-op models (CONV_2D,
FULLY_CONNECTED, ADD, MAX_POOL_2D, MEAN, PAD, RESHAPE, SOFTMAX) with the quantization a
converter would give them: int8 activations, int32 biases with scale input_scale * filter_scale,
symmetric (zero point 0) weights, per-channel for CONV_2D.
"""

from __future__ import annotations

from typing import Any, Sequence

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

OPTIONS: dict[str, tuple[int, type | None]] = {
    "CONV_2D": (schema.BuiltinOptions.Conv2DOptions, schema.Conv2DOptionsT),
    "FULLY_CONNECTED": (schema.BuiltinOptions.FullyConnectedOptions, schema.FullyConnectedOptionsT),
    "ADD": (schema.BuiltinOptions.AddOptions, schema.AddOptionsT),
    "MAX_POOL_2D": (schema.BuiltinOptions.Pool2DOptions, schema.Pool2DOptionsT),
    "AVERAGE_POOL_2D": (schema.BuiltinOptions.Pool2DOptions, schema.Pool2DOptionsT),
    "MEAN": (schema.BuiltinOptions.ReducerOptions, schema.ReducerOptionsT),
    "PAD": (schema.BuiltinOptions.PadOptions, schema.PadOptionsT),
    "RESHAPE": (schema.BuiltinOptions.ReshapeOptions, schema.ReshapeOptionsT),
    "SOFTMAX": (schema.BuiltinOptions.SoftmaxOptions, schema.SoftmaxOptionsT),
}
ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADDING = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}
_TYPES = {np.dtype(np.int8): schema.TensorType.INT8, np.dtype(np.int32): schema.TensorType.INT32, np.dtype(np.float32): schema.TensorType.FLOAT32}


class Graph:
    """One subgraph under construction; `build()` returns the .tflite bytes."""

    def __init__(self) -> None:
        self.buffers: list[schema.BufferT] = [schema.BufferT()]  # buffer 0: the empty sentinel
        self.tensors: list[schema.TensorT] = []
        self.operators: list[schema.OperatorT] = []
        self.codes: list[int] = []

    def tensor(
        self,
        shape: Sequence[int],
        dtype: Any = np.int8,
        scale: float | Sequence[float] | None = None,
        zero_point: int | Sequence[int] = 0,
        data: np.ndarray | None = None,
        qdim: int = 0,
        name: str | None = None,
    ) -> int:
        """Add a tensor (constant when `data` is given); returns its index."""
        t = schema.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = _TYPES[np.dtype(dtype)]
        t.name = (name or f"t{len(self.tensors)}").encode()
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype).reshape(t.shape))
            buf = schema.BufferT()
            buf.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = schema.QuantizationParametersT()
            scales = np.atleast_1d(np.asarray(scale, dtype=np.float32))
            zps = np.atleast_1d(np.asarray(zero_point, dtype=np.int64))
            q.scale = [float(s) for s in scales]
            q.zeroPoint = [int(z) for z in (zps if len(zps) == len(scales) else np.full(len(scales), zps[0]))]
            q.quantizedDimension = qdim
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name: str, inputs: Sequence[int], outputs: Sequence[int], **options: Any) -> None:
        code = getattr(schema.BuiltinOperator, name)
        if code not in self.codes:
            self.codes.append(code)
        o = schema.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs, o.outputs = list(inputs), list(outputs)
        kind, cls = OPTIONS.get(name, (0, None))
        if cls is not None:
            opts = cls()
            for k, v in options.items():
                if not hasattr(opts, k):
                    raise AttributeError(f"{cls.__name__} has no field {k}")
                setattr(opts, k, v)
            o.builtinOptionsType, o.builtinOptions = kind, opts
        self.operators.append(o)

    def build(self, inputs: Sequence[int], outputs: Sequence[int]) -> bytes:
        sub = schema.SubGraphT()
        sub.tensors, sub.operators = self.tensors, self.operators
        sub.inputs, sub.outputs = list(inputs), list(outputs)
        model = schema.ModelT()
        model.version = 3
        model.description = b"ecg-edge test model"
        model.subgraphs, model.buffers = [sub], self.buffers
        model.operatorCodes = []
        for code in self.codes:
            oc = schema.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            model.operatorCodes.append(oc)
        b = flatbuffers.Builder(1024)
        b.Finish(model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


Q = tuple[float, int]  # (scale, zero point)


def _bias_scales(in_scale: float, w_scales: np.ndarray) -> np.ndarray:
    return (np.float32(in_scale) * np.asarray(w_scales, dtype=np.float32)).astype(np.float32)


def conv2d_model(
    in_shape: Sequence[int],
    weights: np.ndarray,
    bias: np.ndarray | None,
    w_scales: Sequence[float],
    in_q: Q,
    out_q: Q,
    out_shape: Sequence[int],
    padding: str = "VALID",
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    activation: str = "NONE",
) -> bytes:
    """CONV_2D: input NHWC, weights OHWI int8 (per-channel scales), bias int32 or None."""
    g = Graph()
    x = g.tensor(in_shape, scale=in_q[0], zero_point=in_q[1])
    w = g.tensor(weights.shape, scale=w_scales, zero_point=[0] * len(w_scales), data=weights, qdim=0)
    ins = [x, w]
    if bias is not None:
        ins.append(g.tensor(bias.shape, np.int32, scale=_bias_scales(in_q[0], w_scales), zero_point=[0] * len(w_scales), data=bias))
    else:
        ins.append(-1)
    y = g.tensor(out_shape, scale=out_q[0], zero_point=out_q[1])
    g.op("CONV_2D", ins, [y], padding=PADDING[padding], strideH=stride[0], strideW=stride[1],
         dilationHFactor=dilation[0], dilationWFactor=dilation[1], fusedActivationFunction=ACTIVATIONS[activation])  # fmt: skip
    return g.build([x], [y])


def fully_connected_model(
    in_shape: Sequence[int], weights: np.ndarray, bias: np.ndarray | None, w_scale: float, in_q: Q, out_q: Q,
    activation: str = "NONE", keep_num_dims: bool = False,
) -> bytes:  # fmt: skip
    """FULLY_CONNECTED with per-tensor weights (out, in) and an optional int32 bias."""
    g = Graph()
    x = g.tensor(in_shape, scale=in_q[0], zero_point=in_q[1])
    w = g.tensor(weights.shape, scale=w_scale, zero_point=0, data=weights)
    b = -1 if bias is None else g.tensor(bias.shape, np.int32, scale=float(_bias_scales(in_q[0], [w_scale])[0]), zero_point=0, data=bias)
    batches = int(np.prod(in_shape)) // weights.shape[1]
    out_shape = [*in_shape[:-1], weights.shape[0]] if keep_num_dims else [batches, weights.shape[0]]
    y = g.tensor(out_shape, scale=out_q[0], zero_point=out_q[1])
    g.op("FULLY_CONNECTED", [x, w, b], [y], fusedActivationFunction=ACTIVATIONS[activation], keepNumDims=keep_num_dims)
    return g.build([x], [y])


def add_model(
    shape: Sequence[int], x_q: Q, y_q: Q, out_q: Q, weights: np.ndarray, w_scales: Sequence[float],
    activation: str = "NONE", swap: bool = False,
) -> bytes:  # fmt: skip
    """x -> 1x1 CONV_2D (no bias) -> y; ADD(x, y) (or ADD(y, x) with `swap`): two inputs in the arena with
    their own scales and zero points."""
    g = Graph()
    x = g.tensor(shape, scale=x_q[0], zero_point=x_q[1])
    w = g.tensor(weights.shape, scale=w_scales, zero_point=[0] * len(w_scales), data=weights)
    y = g.tensor(shape, scale=y_q[0], zero_point=y_q[1])
    g.op("CONV_2D", [x, w, -1], [y], padding=PADDING["VALID"], strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1)
    z = g.tensor(shape, scale=out_q[0], zero_point=out_q[1])
    g.op("ADD", [y, x] if swap else [x, y], [z], fusedActivationFunction=ACTIVATIONS[activation])
    return g.build([x], [z])


def add_const_model(
    shape: Sequence[int], q1: Q, q2: Q, out_q: Q, const: np.ndarray, activation: str = "NONE"
) -> bytes:
    """ADD of the input and a constant int8 tensor (of `const.shape`: a different shape broadcasts)."""
    g = Graph()
    a = g.tensor(shape, scale=q1[0], zero_point=q1[1])
    b = g.tensor(const.shape, scale=q2[0], zero_point=q2[1], data=const)
    y = g.tensor(shape, scale=out_q[0], zero_point=out_q[1])
    g.op("ADD", [a, b], [y], fusedActivationFunction=ACTIVATIONS[activation])
    return g.build([a], [y])


def pool_model(
    kind: str, in_shape: Sequence[int], out_shape: Sequence[int], q: Q, filt: tuple[int, int], stride: tuple[int, int],
    padding: str = "VALID", activation: str = "NONE",
) -> bytes:  # fmt: skip
    """MAX_POOL_2D or AVERAGE_POOL_2D (same quantization in and out, as TFLM requires)."""
    g = Graph()
    x = g.tensor(in_shape, scale=q[0], zero_point=q[1])
    y = g.tensor(out_shape, scale=q[0], zero_point=q[1])
    g.op(kind, [x], [y], padding=PADDING[padding], strideH=stride[0], strideW=stride[1], filterHeight=filt[0],
         filterWidth=filt[1], fusedActivationFunction=ACTIVATIONS[activation])  # fmt: skip
    return g.build([x], [y])


def mean_model(in_shape: Sequence[int], axes: Sequence[int], in_q: Q, out_q: Q, keep_dims: bool = True) -> bytes:
    """MEAN over `axes` (an int32 constant)."""
    g = Graph()
    x = g.tensor(in_shape, scale=in_q[0], zero_point=in_q[1])
    ax = g.tensor([len(axes)], np.int32, data=np.asarray(axes, dtype=np.int32))
    norm = [a % len(in_shape) for a in axes]
    out_shape = [1 if i in norm else d for i, d in enumerate(in_shape)] if keep_dims else [d for i, d in enumerate(in_shape) if i not in norm]
    y = g.tensor(out_shape, scale=out_q[0], zero_point=out_q[1])
    g.op("MEAN", [x, ax], [y], keepDims=keep_dims)
    return g.build([x], [y])


def pad_model(in_shape: Sequence[int], paddings: Sequence[tuple[int, int]], q: Q) -> bytes:
    """PAD with an int32 (rank, 2) paddings constant; pads with the zero point."""
    g = Graph()
    x = g.tensor(in_shape, scale=q[0], zero_point=q[1])
    p = g.tensor([len(paddings), 2], np.int32, data=np.asarray(paddings, dtype=np.int32))
    out_shape = [d + a + b for d, (a, b) in zip(in_shape, paddings)]
    y = g.tensor(out_shape, scale=q[0], zero_point=q[1])
    g.op("PAD", [x, p], [y])
    return g.build([x], [y])


def reshape_pad_model(in_shape: Sequence[int], new_shape: Sequence[int], paddings: Sequence[tuple[int, int]], q: Q) -> bytes:
    """RESHAPE then PAD (a reshape alone would have the model input as its output's storage)."""
    g = Graph()
    x = g.tensor(in_shape, scale=q[0], zero_point=q[1])
    s = g.tensor([len(new_shape)], np.int32, data=np.asarray(new_shape, dtype=np.int32))
    r = g.tensor(new_shape, scale=q[0], zero_point=q[1])
    g.op("RESHAPE", [x, s], [r], newShape=list(new_shape))
    p = g.tensor([len(paddings), 2], np.int32, data=np.asarray(paddings, dtype=np.int32))
    y = g.tensor([d + a + b for d, (a, b) in zip(new_shape, paddings)], scale=q[0], zero_point=q[1])
    g.op("PAD", [r, p], [y])
    return g.build([x], [y])


def softmax_model(shape: Sequence[int], in_q: Q) -> bytes:
    """SOFTMAX (int8 out, scale 1/256, zero point -128): an op the native backend lacks."""
    g = Graph()
    x = g.tensor(shape, scale=in_q[0], zero_point=in_q[1])
    y = g.tensor(shape, scale=1.0 / 256, zero_point=-128)
    g.op("SOFTMAX", [x], [y], beta=1.0)
    return g.build([x], [y])


def run_tflm(tflite: bytes, inputs: np.ndarray, arena: int = 1 << 20) -> np.ndarray:
    """TFLM's outputs (N, *out_shape) int8 for inputs (N, *in_shape) of a one-input model (shapes with the batch)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite, arena_size=arena)
    outs = []
    for x in inputs:
        interp.set_input(np.ascontiguousarray(x), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0), copy=True))
    return np.stack(outs)
