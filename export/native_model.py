"""An int8 `.tflite` as the model blob of the native backend (firmware/ecg_edge/src/nn).

`build_native_model` reads the flatbuffer, computes every quantized parameter exactly as
TensorFlow Lite Micro's Prepare does (QuantizeMultiplier with frexp and round half away from zero,
the 2^31 edge case; effective scales double(input) * double(filter) / double(output) for CONV_2D
per channel and for FULLY_CONNECTED; ADD's twice-the-larger-input rescaling; MEAN's 1/count folded
into the multiplier; fused activation limits quantized in float32), plans the activation memory at
export time and packs everything into one little-endian blob.
`write_native_sources` turns the blob into `ecg_native_model.h/.c` for the sketch.

Supported: PAD, RESHAPE (aliased to its input), CONV_2D, FULLY_CONNECTED (per-tensor weights),
ADD (same shapes), MAX_POOL_2D, MEAN (over a contiguous block of axes); int8 activations, int8
weights with zero point 0, int32 biases. Anything else raises UnsupportedModelError naming the
operator and its index, as does a layer whose worst-case int32 accumulator could overflow.
A PAD -> RESHAPE pair in front of a VALID CONV_2D becomes that convolution's padding
(export.native_fold): no copy, no padded tensor.

Memory plan: each tensor lives from the op that writes it (the model input from the start) to its
last reader (the model output to the end); a RESHAPE's output shares its input's storage; CONV_2D
and FULLY_CONNECTED get a scratch (four int16 im2col columns and a 36-byte requantization record per
output channel), a large ADD two 256-entry tables, for the op's duration. Buffers are
placed greedily at the lowest 4-byte aligned offset free for their lifetime (the scheme of TFLM's
GreedyMemoryPlanner), in a few orders (largest first as TFLM, longest-lived first, ...); the
smallest arena wins.
The blob's format and its C sources are `export.native_blob`'s; the memory plan is `export.arena_plan`'s.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from .arena_plan import plan_arena
from .native_fold import PadFold, pad_folds
from .native_blob import ALIGN, HEADER_BYTES, NONE, OP_FIELDS, NativeModel, pack_blob, pack_records

INT8_MIN, INT8_MAX, INT32_MAX = -128, 127, 2**31 - 1
ADD_LEFT_SHIFT = 20  # TFLM's for int8 ADD
MATMUL_SCRATCH_PER_DEPTH = 4 * 2  # NN_MATMUL_SCRATCH_BYTES: four int16 im2col columns ...
MATMUL_SCRATCH_PER_ROW = 36  # ... and one 36-byte requantization record per output channel (nn_row_requant)
ADD_TABLE_BYTES = 2 * 256 * 4  # NN_ADD_SCRATCH_BYTES: the optimized ADD's two lookup tables
ADD_TABLE_MIN_SIZE = 1024  # smaller ADDs compute each element directly

# What nn_model_init accepts (NN_MAX_DIM, NN_MAX_WINDOW, NN_MAX_MEAN_COUNT in nn_model.c).
_MAX_DIM, _MAX_WINDOW, _MAX_MEAN = 65535, 1023, 1 << 23
_FIELD_LIMITS: dict[str, int] = {
    **dict.fromkeys(("batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "channels", "accum_depth", "out_depth"), _MAX_DIM),
    **dict.fromkeys(("d0", "d1", "d2", "d3", "b0", "b1", "b2", "b3", "a0", "a1", "a2", "a3"), INT32_MAX),
    **dict.fromkeys(("k_h", "k_w", "stride_h", "stride_w", "dil_h", "dil_w", "pad_h", "pad_w", "filter_h", "filter_w"), _MAX_WINDOW),
    **dict.fromkeys(("outer", "count", "inner"), _MAX_MEAN),
    "size": INT32_MAX,
}  # fmt: skip
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


class UnsupportedModelError(ValueError):
    """The model uses an op, option or quantization the native backend does not implement."""


# --------------------------------------------------------------------------- TFLM's arithmetic


def _round_half_away(x: float) -> int:
    """std::round: nearest integer, halves away from zero (exact for doubles)."""
    f = math.floor(abs(x))
    r = f + (1 if abs(x) - f >= 0.5 else 0)
    return int(r if x >= 0 else -r)


def quantize_multiplier(d: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: (m, shift) with d ~= m * 2^(shift - 31), m in [2^30, 2^31) or 0."""
    if d == 0.0:
        return 0, 0
    q, shift = math.frexp(d)
    m = _round_half_away(q * (1 << 31))
    if m == 1 << 31:
        m //= 2
        shift += 1
    if m > INT32_MAX:
        raise ValueError(f"multiplier {d!r} does not quantize")
    if shift < -31:
        return 0, 0
    return m, shift


def quantize_multiplier_smaller_than_one(d: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierSmallerThanOneExp: 0 < d < 1, shift <= 0."""
    if not 0.0 < d < 1.0:
        raise ValueError(f"multiplier {d!r} is not in (0, 1)")
    m, shift = quantize_multiplier(d)
    if shift > 0:
        raise ValueError(f"multiplier {d!r} gives a positive shift")
    return m, shift


def _quantize_f32(scale: float, zero_point: int, f: float) -> int:
    """TFLM's Quantize() in kernel_util: zero_point + round(float(f) / float(scale)), in float32."""
    tmp = float(np.float32(np.float32(f) / np.float32(scale)))
    return zero_point + _round_half_away(tmp)


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output."""
    lo, hi = INT8_MIN, INT8_MAX
    if activation == 1:  # RELU
        lo = max(lo, _quantize_f32(scale, zero_point, 0.0))
    elif activation == 3:  # RELU6
        lo, hi = max(lo, _quantize_f32(scale, zero_point, 0.0)), min(hi, _quantize_f32(scale, zero_point, 6.0))
    elif activation == 2:  # RELU_N1_TO_1
        lo, hi = max(lo, _quantize_f32(scale, zero_point, -1.0)), min(hi, _quantize_f32(scale, zero_point, 1.0))
    elif activation != 0:
        raise ValueError(f"fused activation {activation}")
    return lo, hi


def out_size(padding: int, in_size: int, filt: int, stride: int, dilation: int = 1) -> int:
    """TFLite ComputeOutSize (SAME = 0, VALID = 1)."""
    effective = (filt - 1) * dilation + 1
    return (in_size + stride - 1) // stride if padding == schema.Padding.SAME else (in_size + stride - effective) // stride


def leading_padding(stride: int, dilation: int, in_size: int, filt: int, out: int) -> int:
    """TFLite ComputePaddingWithOffset: the leading pad (total // 2; the odd one goes at the end)."""
    effective = (filt - 1) * dilation + 1
    return max(0, (out - 1) * stride + effective - in_size) // 2


# --------------------------------------------------------------------------- reading the graph


@dataclass
class _Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type: int
    scales: np.ndarray  # float32, empty if unquantized
    zero_points: np.ndarray  # int64
    data: bytes | None  # constant contents

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0])

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def array(self, dtype: type) -> np.ndarray:
        return np.frombuffer(self.data or b"", dtype=np.dtype(dtype).newbyteorder("<")).reshape(self.shape)


def _read_model(tflite: bytes) -> schema.ModelT:
    if len(tflite) < 8 or not schema.Model.ModelBufferHasIdentifier(tflite, 0):
        raise UnsupportedModelError("not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))


def _tensors(model: schema.ModelT, graph: schema.SubGraphT) -> list[_Tensor]:
    out = []
    for i, t in enumerate(graph.tensors or []):
        q = t.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [], dtype=np.float32)
        zps = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], dtype=np.int64)
        buf = model.buffers[t.buffer] if model.buffers and t.buffer < len(model.buffers) else None
        data = bytes(np.asarray(buf.data, dtype=np.uint8)) if buf is not None and buf.data is not None and len(buf.data) else None
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        name = (t.name or b"").decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or "")
        out.append(_Tensor(i, name, shape, int(t.type), scales, zps, data))
    return out


def _op_name(model: schema.ModelT, op: schema.OperatorT) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return (code.customCode or b"CUSTOM").decode("utf-8", "replace")
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


# --------------------------------------------------------------------------- the blob builder


class _Builder:
    """Collects tensors, op records and data while the ops are translated in order."""

    def __init__(self, tensors: list[_Tensor], plain_mean: bool = False, folds: dict[int, PadFold] | None = None) -> None:
        self.t = tensors
        self.plain_mean = plain_mean
        self.folds = folds or {}  # CONV_2D index -> the PAD it absorbs
        self.native: dict[int, int] = {}  # TFLite tensor -> native tensor
        self.entries: list[dict] = []  # native tensors: {tfl, bytes, const, first, last, alias}
        self.records: list[tuple[str, dict[str, int]]] = []
        self.record_ops: list[int] = []  # the TFLite operator of each record
        self.data = bytearray()
        self.scratch: dict[int, int] = {}  # op index -> scratch bytes
        self.macs = 0
        self.ops: list[str] = []
        self.op_macs: list[int] = []  # per op record
        self._pending_macs = 0
        self._data_cache: dict[bytes, int] = {}

    # -- data section
    def put_data(self, raw: bytes) -> int:
        """Offset of `raw` in the data section (4-aligned; identical chunks stored once)."""
        if raw in self._data_cache:
            return self._data_cache[raw]
        off = len(self.data)
        self.data += raw + bytes(-len(raw) % ALIGN)
        self._data_cache[raw] = off
        return off

    def put_i32(self, values: np.ndarray | list[int]) -> int:
        return self.put_data(np.asarray(values, dtype="<i4").tobytes())

    # -- tensors
    def use(self, tfl: int, op: int, where: str) -> int:
        """The native tensor for TFLite tensor `tfl` read by op `op` (constants go to the blob)."""
        t = self.t[tfl]
        if t.type != schema.TensorType.INT8:
            raise UnsupportedModelError(f"{where}: tensor {t.name!r} is {_TYPE_NAMES.get(t.type, t.type)}; the native backend runs int8 only")
        if tfl not in self.native:
            if t.data is None:
                raise UnsupportedModelError(f"{where}: tensor {t.name!r} is read before any operator writes it")
            self.native[tfl] = len(self.entries)
            self.entries.append({"tfl": tfl, "bytes": t.size, "const": self.put_data(t.data), "first": 0, "last": 0, "alias": None})
        e = self.entries[self.native[tfl]]
        e["last"] = max(e["last"], op)
        return self.native[tfl]

    def define(self, tfl: int, op: int, where: str, alias_of: int | None = None) -> int:
        """A new activation written by op `op` (a RESHAPE's output aliases its input's storage)."""
        t = self.t[tfl]
        if t.type != schema.TensorType.INT8:
            raise UnsupportedModelError(f"{where}: tensor {t.name!r} is {_TYPE_NAMES.get(t.type, t.type)}; the native backend runs int8 only")
        if tfl in self.native:
            raise UnsupportedModelError(f"{where}: tensor {t.name!r} is written twice")
        self.native[tfl] = len(self.entries)
        self.entries.append({"tfl": tfl, "bytes": t.size, "const": None, "first": op, "last": op, "alias": alias_of})
        return self.native[tfl]

    def add_macs(self, macs: int) -> None:
        """Multiply-accumulates of the op whose record comes next."""
        self.macs += macs
        self._pending_macs = macs

    def record(self, kind: str, op: int, **params: int) -> None:
        missing = set(OP_FIELDS[kind]) ^ set(params)
        if missing:
            raise AssertionError(f"{kind} record fields differ: {sorted(missing)}")
        for name, value in params.items():
            limit = _FIELD_LIMITS.get(name)
            if limit is not None and not 0 <= value <= limit:
                raise UnsupportedModelError(f"operator {op} {kind}: {name} = {value} is beyond the native backend's limit {limit}")
        self.records.append((kind, params))
        self.record_ops.append(op)
        self.ops.append(kind)
        self.op_macs.append(self._pending_macs)
        self._pending_macs = 0


def _q(t: _Tensor, where: str) -> tuple[float, int]:
    if len(t.scales) != 1 or len(t.zero_points) != 1:
        raise UnsupportedModelError(f"{where}: tensor {t.name!r} needs one scale and zero point (per-tensor int8), has {len(t.scales)}")
    if not t.scale > 0 or not INT8_MIN <= t.zero_point <= INT8_MAX:
        raise UnsupportedModelError(f"{where}: tensor {t.name!r} has scale {t.scale} and zero point {t.zero_point}")
    return t.scale, t.zero_point


def _const(t: _Tensor, where: str, what: str) -> _Tensor:
    if t.data is None:
        raise UnsupportedModelError(f"{where}: the {what} {t.name!r} must be a constant")
    return t


def _check_overflow(weights: np.ndarray, bias: np.ndarray | None, input_zp: int, where: str) -> None:
    """Refuse a layer whose worst-case int32 accumulator could overflow (the kernels then agree exactly)."""
    x_max = max(abs(INT8_MIN - input_zp), abs(INT8_MAX - input_zp))
    worst = np.abs(weights.reshape(len(weights), -1).astype(np.int64)).sum(axis=1) * x_max
    if bias is not None:
        worst = worst + np.abs(bias.astype(np.int64))
    if worst.max(initial=0) > INT32_MAX:
        raise UnsupportedModelError(f"{where}: the worst-case accumulator ({int(worst.max())}) could overflow int32")


def _options(op: schema.OperatorT, cls: type, where: str) -> object:
    opts = op.builtinOptions
    if not isinstance(opts, cls):
        raise UnsupportedModelError(f"{where}: missing {cls.__name__[:-1]}")
    return opts


def _nhwc(shape: tuple[int, ...], where: str, what: str) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise UnsupportedModelError(f"{where}: the {what} must be 4-D (NHWC), is {list(shape)}")
    return shape  # type: ignore[return-value]


def _conv(b: _Builder, i: int, op: schema.OperatorT, where: str) -> None:
    x, w = b.t[op.inputs[0]], b.t[op.inputs[1]]
    y = b.t[op.outputs[0]]
    bias = b.t[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    o = _options(op, schema.Conv2DOptionsT, where)
    n, in_h, in_w, in_c = _nhwc(x.shape, where, "input")
    fold = b.folds.get(i)
    out_c, k_h, k_w, w_c = _nhwc(_const(w, where, "filter").shape, where, "filter")
    on, out_h, out_w, oc = _nhwc(y.shape, where, "output")
    if w.type != schema.TensorType.INT8:
        raise UnsupportedModelError(f"{where}: filter type {_TYPE_NAMES.get(w.type, w.type)}; only int8 weights are supported")
    if w_c != in_c:
        raise UnsupportedModelError(f"{where}: grouped convolution (filter depth {w_c}, input depth {in_c}) is not supported")
    expect = (n, out_size(o.padding, in_h, k_h, o.strideH, o.dilationHFactor), out_size(o.padding, in_w, k_w, o.strideW, o.dilationWFactor), out_c)
    if (on, out_h, out_w, oc) != expect:
        raise UnsupportedModelError(f"{where}: output shape {list(y.shape)}, TFLite computes {list(expect)}")
    (in_s, in_zp), (out_s, out_zp) = _q(x, where), _q(y, where)
    if len(w.scales) not in (1, out_c) or np.any(w.zero_points != 0):
        raise UnsupportedModelError(f"{where}: filter quantization must be symmetric (zero point 0), per tensor or per output channel")
    scales = np.broadcast_to(w.scales, (out_c,))
    pairs = [quantize_multiplier(float(in_s) * float(s) / float(out_s)) for s in scales]
    weights = w.array(np.int8)
    bias_arr = None
    if bias is not None:
        if bias.type != schema.TensorType.INT32 or bias.shape != (out_c,):
            raise UnsupportedModelError(f"{where}: bias must be int32 of shape [{out_c}]")
        bias_arr = _const(bias, where, "bias").array(np.int32)
    _check_overflow(weights, bias_arr, in_zp, where)
    act_min, act_max = activation_range(o.fusedActivationFunction, out_s, out_zp)
    pad_h = leading_padding(o.strideH, o.dilationHFactor, in_h, k_h, out_h) if o.padding == schema.Padding.SAME else 0
    pad_w = leading_padding(o.strideW, o.dilationWFactor, in_w, k_w, out_w) if o.padding == schema.Padding.SAME else 0
    source = op.inputs[0]
    if fold is not None:  # the PAD before it, folded: the unpadded input, its leading width as padding
        source, in_w, pad_w = fold.source, fold.width, pad_w + fold.before
    depth = k_h * k_w * in_c
    b.scratch[i] = MATMUL_SCRATCH_PER_DEPTH * depth + MATMUL_SCRATCH_PER_ROW * out_c
    b.add_macs(n * out_h * out_w * out_c * depth)
    b.record(
        "CONV_2D", i, **{"in": b.use(source, i, where)}, out=b.define(op.outputs[0], i, where), scratch=NONE,
        batches=n, in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
        stride_h=o.strideH, stride_w=o.strideW, dil_h=o.dilationHFactor, dil_w=o.dilationWFactor, pad_h=pad_h, pad_w=pad_w,
        input_offset=-in_zp, output_offset=out_zp, act_min=act_min, act_max=act_max,
        filter=b.put_data(weights.tobytes()), bias=NONE if bias_arr is None else b.put_i32(bias_arr),
        multipliers=b.put_i32([m for m, _ in pairs]), shifts=b.put_i32([s for _, s in pairs]),
    )  # fmt: skip


def _fully_connected(b: _Builder, i: int, op: schema.OperatorT, where: str) -> None:
    x, w, y = b.t[op.inputs[0]], b.t[op.inputs[1]], b.t[op.outputs[0]]
    bias = b.t[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    o = _options(op, schema.FullyConnectedOptionsT, where)
    if o.weightsFormat != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
        raise UnsupportedModelError(f"{where}: shuffled weights are not supported")
    if len(_const(w, where, "filter").shape) != 2 or w.type != schema.TensorType.INT8:
        raise UnsupportedModelError(f"{where}: the filter must be int8 of shape [out, in]")
    out_depth, depth = w.shape
    if len(w.scales) != 1 or np.any(w.zero_points != 0):
        raise UnsupportedModelError(f"{where}: per-channel or asymmetric weights are not supported (per-tensor, zero point 0 only)")
    if x.size % depth or y.size != (x.size // depth) * out_depth:
        raise UnsupportedModelError(f"{where}: shapes {list(x.shape)} x {list(w.shape)} -> {list(y.shape)} do not match")
    (in_s, in_zp), (out_s, out_zp) = _q(x, where), _q(y, where)
    # Older TFLM took double(float(input_scale * filter_scale)); the tflite-micro runtime tested here
    # computes double(input) * double(filter) / double(output) as for CONV_2D (tests check which).
    product = float(in_s) * float(w.scale)
    bias_arr = None
    if bias is not None:
        if bias.type != schema.TensorType.INT32 or bias.shape != (out_depth,):
            raise UnsupportedModelError(f"{where}: bias must be int32 of shape [{out_depth}]")
        bias_arr = _const(bias, where, "bias").array(np.int32)
        if len(bias.scales) == 1 and abs(product - float(bias.scale)) / float(out_s) > 0.02:
            raise UnsupportedModelError(f"{where}: bias scale {bias.scale} is not input scale x filter scale (TFLM refuses it too)")
    weights = w.array(np.int8)
    _check_overflow(weights, bias_arr, in_zp, where)
    m, s = quantize_multiplier(product / float(out_s))
    act_min, act_max = activation_range(o.fusedActivationFunction, out_s, out_zp)
    batches = x.size // depth
    b.scratch[i] = MATMUL_SCRATCH_PER_DEPTH * depth + MATMUL_SCRATCH_PER_ROW * out_depth
    b.add_macs(batches * out_depth * depth)
    b.record(
        "FULLY_CONNECTED", i, **{"in": b.use(op.inputs[0], i, where)}, out=b.define(op.outputs[0], i, where), scratch=NONE,
        batches=batches, accum_depth=depth, out_depth=out_depth, input_offset=-in_zp, output_offset=out_zp,
        multiplier=m, shift=s, act_min=act_min, act_max=act_max,
        filter=b.put_data(weights.tobytes()), bias=NONE if bias_arr is None else b.put_i32(bias_arr),
    )  # fmt: skip


def _add(b: _Builder, i: int, op: schema.OperatorT, where: str) -> None:
    x1, x2, y = b.t[op.inputs[0]], b.t[op.inputs[1]], b.t[op.outputs[0]]
    if not (x1.shape == x2.shape == y.shape):
        raise UnsupportedModelError(
            f"{where}: broadcasting (inputs {list(x1.shape)} and {list(x2.shape)}, output {list(y.shape)}) is not supported by the native backend; "
            "both inputs need the output's shape"
        )
    o = _options(op, schema.AddOptionsT, where)
    (s1, zp1), (s2, zp2), (so, zpo) = _q(x1, where), _q(x2, where), _q(y, where)
    twice_max = 2 * float(max(np.float32(s1), np.float32(s2)))
    try:
        m1, sh1 = quantize_multiplier_smaller_than_one(float(s1) / twice_max)
        m2, sh2 = quantize_multiplier_smaller_than_one(float(s2) / twice_max)
        mo, sho = quantize_multiplier_smaller_than_one(twice_max / ((1 << ADD_LEFT_SHIFT) * float(so)))
    except ValueError as exc:
        raise UnsupportedModelError(f"{where}: scales {s1}, {s2} -> {so} cannot be requantized as TFLM does ({exc})") from exc
    act_min, act_max = activation_range(o.fusedActivationFunction, so, zpo)
    in1, in2 = b.use(op.inputs[0], i, where), b.use(op.inputs[1], i, where)
    if y.size >= ADD_TABLE_MIN_SIZE:
        b.scratch[i] = ADD_TABLE_BYTES
    b.record(
        "ADD", i, in1=in1, in2=in2, out=b.define(op.outputs[0], i, where), scratch=NONE, size=y.size,
        input1_offset=-zp1, input2_offset=-zp2, output_offset=zpo, left_shift=ADD_LEFT_SHIFT,
        input1_multiplier=m1, input1_shift=sh1, input2_multiplier=m2, input2_shift=sh2,
        output_multiplier=mo, output_shift=sho, act_min=act_min, act_max=act_max,
    )  # fmt: skip


def _max_pool(b: _Builder, i: int, op: schema.OperatorT, where: str) -> None:
    x, y = b.t[op.inputs[0]], b.t[op.outputs[0]]
    o = _options(op, schema.Pool2DOptionsT, where)
    n, in_h, in_w, c = _nhwc(x.shape, where, "input")
    expect = (n, out_size(o.padding, in_h, o.filterHeight, o.strideH), out_size(o.padding, in_w, o.filterWidth, o.strideW), c)
    if tuple(y.shape) != expect:
        raise UnsupportedModelError(f"{where}: output shape {list(y.shape)}, TFLite computes {list(expect)}")
    _q(x, where)
    out_s, out_zp = _q(y, where)
    _, out_h, out_w, _ = expect
    pad_h = leading_padding(o.strideH, 1, in_h, o.filterHeight, out_h) if o.padding == schema.Padding.SAME else 0
    pad_w = leading_padding(o.strideW, 1, in_w, o.filterWidth, out_w) if o.padding == schema.Padding.SAME else 0
    act_min, act_max = activation_range(o.fusedActivationFunction, out_s, out_zp)
    b.record(
        "MAX_POOL_2D", i, **{"in": b.use(op.inputs[0], i, where)}, out=b.define(op.outputs[0], i, where),
        batches=n, in_h=in_h, in_w=in_w, channels=c, out_h=out_h, out_w=out_w, filter_h=o.filterHeight, filter_w=o.filterWidth,
        stride_h=o.strideH, stride_w=o.strideW, pad_h=pad_h, pad_w=pad_w, act_min=act_min, act_max=act_max,
    )  # fmt: skip


def _reduction_block(shape: tuple[int, ...], axes: set[int], where: str) -> tuple[int, int, int]:
    """(outer, count, inner) when the reduced axes form one block once size-1 axes are ignored."""
    kept = [(d, a in axes) for a, d in enumerate(shape) if d != 1]
    flags = [r for _, r in kept]
    if True in flags:
        first, last = flags.index(True), len(flags) - 1 - flags[::-1].index(True)
        if not all(flags[first : last + 1]):
            raise UnsupportedModelError(f"{where}: MEAN over non-adjacent axes {sorted(axes)} of {list(shape)} is not supported")
    else:
        first = last = len(flags)
    dims = [d for d, _ in kept]
    return int(np.prod(dims[:first])), int(np.prod(dims[first : last + 1])), int(np.prod(dims[last + 1 :]))


def _mean(b: _Builder, i: int, op: schema.OperatorT, where: str) -> None:
    x, ax, y = b.t[op.inputs[0]], b.t[op.inputs[1]], b.t[op.outputs[0]]
    if ax.type != schema.TensorType.INT32:
        raise UnsupportedModelError(f"{where}: the axis tensor must be int32")
    rank = len(x.shape)
    axes = {int(a) + rank if int(a) < 0 else int(a) for a in _const(ax, where, "axis").array(np.int32).reshape(-1)}
    if not all(0 <= a < rank for a in axes):
        raise UnsupportedModelError(f"{where}: axes out of range for shape {list(x.shape)}")
    outer, count, inner = _reduction_block(x.shape, axes, where)
    if y.size != outer * inner:
        raise UnsupportedModelError(f"{where}: output shape {list(y.shape)} does not match the reduction of {list(x.shape)}")
    (in_s, in_zp), (out_s, out_zp) = _q(x, where), _q(y, where)
    same_quantization = in_zp == out_zp and np.float32(in_s) == np.float32(out_s)
    requantize = not (b.plain_mean and same_quantization)
    m, s = quantize_multiplier(float(in_s) / float(out_s))
    if requantize:  # reference_ops::QuantizedMeanOrSum folds 1/count into the multiplier
        fold = min(count.bit_length() - 1, 32, 31 + s)  # >= 0: quantize_multiplier gives s >= -31
        m, s = (m << fold) // count, s - fold
    b.record(
        "MEAN", i, **{"in": b.use(op.inputs[0], i, where)}, out=b.define(op.outputs[0], i, where),
        outer=outer, count=count, inner=inner, requantize=int(requantize), input_zero_point=in_zp, output_zero_point=out_zp,
        multiplier=m, shift=s,
    )  # fmt: skip


def _pad(b: _Builder, i: int, op: schema.OperatorT, where: str) -> None:
    x, p, y = b.t[op.inputs[0]], b.t[op.inputs[1]], b.t[op.outputs[0]]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        raise UnsupportedModelError(f"{where}: a constant pad value is not supported")
    if p.type not in (schema.TensorType.INT32, schema.TensorType.INT64):
        raise UnsupportedModelError(f"{where}: paddings must be int32 or int64")
    pads = _const(p, where, "paddings").array(np.int32 if p.type == schema.TensorType.INT32 else np.int64).reshape(-1, 2)
    rank = len(x.shape)
    if len(pads) != rank or (pads < 0).any():
        raise UnsupportedModelError(f"{where}: paddings {pads.tolist()} for a rank-{rank} input")
    if tuple(y.shape) != tuple(int(d + a + z) for d, (a, z) in zip(x.shape, pads)):
        raise UnsupportedModelError(f"{where}: output shape {list(y.shape)} does not match the paddings")
    _, out_zp = _q(y, where)
    dims, before, after = _merge_unpadded(list(x.shape), [int(a) for a, _ in pads], [int(z) for _, z in pads])
    if len(dims) > 4:
        raise UnsupportedModelError(f"{where}: padding {pads.tolist()} needs more than 4 dimensions")
    b.record(
        "PAD", i, **{"in": b.use(op.inputs[0], i, where)}, out=b.define(op.outputs[0], i, where),
        **{f"d{k}": dims[k] for k in range(4)}, **{f"b{k}": before[k] for k in range(4)}, **{f"a{k}": after[k] for k in range(4)},
        pad_value=out_zp,
    )  # fmt: skip


def _paddings(t: _Tensor) -> np.ndarray | None:
    """A PAD's constant paddings as a [rank, 2] int64 array, or None."""
    if t.data is None or t.type not in (schema.TensorType.INT32, schema.TensorType.INT64):
        return None
    return t.array(np.int32 if t.type == schema.TensorType.INT32 else np.int64).reshape(-1, 2).astype(np.int64)


def _merge_unpadded(dims: list[int], before: list[int], after: list[int]) -> tuple[list[int], list[int], list[int]]:
    """The same padding on 4 axes with every unpadded axis folded into the one before it, so the
    kernel copies whole contiguous runs (e.g. (1, 2500, 1) padded on axis 1 -> one row of 2500)."""
    d, bf, af = [dims[0]], [before[0]], [after[0]]
    for k in range(1, len(dims)):
        if before[k] == 0 and after[k] == 0:
            d[-1], bf[-1], af[-1] = d[-1] * dims[k], bf[-1] * dims[k], af[-1] * dims[k]
        else:
            d.append(dims[k])
            bf.append(before[k])
            af.append(after[k])
    lead = max(0, 4 - len(d))
    return [1] * lead + d, [0] * lead + bf, [0] * lead + af


def _reshape(b: _Builder, i: int, op: schema.OperatorT, where: str) -> None:
    x, y = b.t[op.inputs[0]], b.t[op.outputs[0]]
    if x.size != y.size:
        raise UnsupportedModelError(f"{where}: {list(x.shape)} and {list(y.shape)} differ in size")
    src = b.use(op.inputs[0], i, where)
    alias = None if b.entries[src]["const"] is not None else src
    b.record("RESHAPE", i, **{"in": src}, out=b.define(op.outputs[0], i, where, alias_of=alias))


_TRANSLATORS = {
    "CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected, "ADD": _add, "MAX_POOL_2D": _max_pool,
    "MEAN": _mean, "PAD": _pad, "RESHAPE": _reshape,
}  # fmt: skip


# --------------------------------------------------------------------------- memory plan


def _root(entries: list[dict], k: int) -> int:
    while entries[k]["alias"] is not None:
        k = entries[k]["alias"]
    return k


def _assemble(b: _Builder, graph: schema.SubGraphT) -> tuple[bytes, int, int, dict[str, int]]:
    """(blob, arena bytes, largest scratch, arena offset by tensor name). Lifetimes count TFLite
    operators (folded ones leave no record)."""
    n_ops = len(b.records)
    graph_in, graph_out = b.native[graph.inputs[0]], b.native[graph.outputs[0]]
    b.entries[graph_in]["first"] = 0
    b.entries[graph_out]["last"] = len(graph.operators or [])
    # storage: one buffer per alias group of activations, then one scratch per CONV_2D / FC
    groups: dict[int, list[int]] = {}
    for k, e in enumerate(b.entries):
        if e["const"] is None:
            groups.setdefault(_root(b.entries, k), []).append(k)
    roots = sorted(groups)
    buffers = [
        (-(-b.entries[r]["bytes"] // ALIGN) * ALIGN, min(b.entries[k]["first"] for k in groups[r]), max(b.entries[k]["last"] for k in groups[r]))
        for r in roots
    ]
    scratch_ops = sorted(b.scratch)
    buffers += [(b.scratch[i], i, i) for i in scratch_ops]
    offsets, arena = plan_arena(buffers)
    where = {k: offsets[n] for n, r in enumerate(roots) for k in groups[r]}
    scratch_at = {i: offsets[len(roots) + n] for n, i in enumerate(scratch_ops)}

    data = bytes(b.data)
    n_t = len(b.entries)
    tensors_at = HEADER_BYTES
    ops_at = tensors_at + 16 * n_t
    ops_size = sum(4 * (len(OP_FIELDS[kind]) + 1) for kind, _ in b.records)
    data_at = ops_at + ops_size
    table = bytearray()
    for k, e in enumerate(b.entries):
        if e["const"] is None:
            table += struct.pack("<4I", 0, where[k], e["bytes"], 0)
        else:
            table += struct.pack("<4I", 1, data_at + e["const"], e["bytes"], 0)
    records = pack_records(b.records, data_at, {r: scratch_at[op] for r, op in enumerate(b.record_ops) if op in scratch_at})
    if len(records) != ops_size:
        raise AssertionError("op table size")
    blob = pack_blob(arena, n_t, n_ops, graph_in, graph_out, tensors_at, ops_at, records, data_at, data, b.macs, bytes(table))
    names = {b.t[e["tfl"]].name: where[k] for k, e in enumerate(b.entries) if e["const"] is None}
    return blob, arena, max(b.scratch.values(), default=0), names


def build_native_model(tflite: bytes, plain_mean: bool = False, fold_pads: bool = True) -> NativeModel:
    """Translate an int8 .tflite into a native model blob; UnsupportedModelError names what is missing.
    `fold_pads=False` keeps every PAD as an op of its own (export.native_fold; the tests compare both).

    MEAN: the tflite-micro runtime this project tests against always runs
    reference_ops::QuantizedMeanOrSum for int8 (checked by tests/test_firmware_nn.py). Older TFLM
    releases took reference_ops::Mean (int32 sum / count, truncating) when the input and output
    scale and zero point are equal; `plain_mean=True` reproduces those.
    """
    model = _read_model(tflite)
    if len(model.subgraphs or []) != 1:
        raise UnsupportedModelError(f"the model has {len(model.subgraphs or [])} subgraphs; the native backend runs exactly one")
    graph = model.subgraphs[0]
    tensors = _tensors(model, graph)
    operators = graph.operators or []
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedModelError(f"the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; the native backend takes one of each")
    if not operators:
        raise UnsupportedModelError("the model has no operators")
    folds = pad_folds(
        graph, lambda op: _op_name(model, op), lambda t: tensors[t].shape, lambda t: (tensors[t].scales, tensors[t].zero_points),
        lambda t: _paddings(tensors[t]),
    ) if fold_pads else {}  # fmt: skip
    skipped = {k for f in folds.values() for k in f.skipped}
    b = _Builder(tensors, plain_mean, folds)
    b.define(graph.inputs[0], 0, "the model input")
    for i, op in enumerate(operators):
        if i in skipped:
            continue
        name = _op_name(model, op)
        where = f"operator {i} {name}"
        if name not in _TRANSLATORS:
            raise UnsupportedModelError(f"{where} is not supported by the native backend (it runs {', '.join(sorted(_TRANSLATORS))})")
        if any(t < 0 for t in op.outputs) or len(op.outputs) != 1:
            raise UnsupportedModelError(f"{where}: one output expected")
        act = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        if act not in _ACTIVATIONS:
            raise UnsupportedModelError(f"{where}: fused activation {act} is not supported (NONE, RELU, RELU_N1_TO_1, RELU6 are)")
        _TRANSLATORS[name](b, i, op, where)
    x, y = tensors[graph.inputs[0]], tensors[graph.outputs[0]]
    if graph.outputs[0] not in b.native or b.entries[b.native[graph.outputs[0]]]["const"] is not None or graph.outputs[0] == graph.inputs[0]:
        raise UnsupportedModelError("the model output is not written by any operator")
    blob, arena, scratch, offsets = _assemble(b, graph)
    return NativeModel(
        blob=blob, arena_bytes=arena, ops=b.ops, macs=b.macs, input_shape=x.shape, output_shape=y.shape,
        input_q=_q(x, "model input"), output_q=_q(y, "model output"), data_bytes=len(b.data), scratch_bytes=scratch,
        tensor_offsets=offsets, op_macs=b.op_macs,
    )  # fmt: skip
