"""The native backend's model blob: its format, packing, reading it back, and its C sources.

Blob format, version 1 (little-endian uint32/int32 words, 4-byte aligned sections; nn_model.h
repeats it):

    header, 16 words: magic "ECNN", version 1, header bytes 64, blob bytes, CRC-32 (zlib) of bytes
      [20, end), arena bytes, tensors, ops, input tensor, output tensor, tensor table offset, op
      table offset, op table bytes, data offset, data bytes, MACs per inference
    tensor table: per tensor (location 0 = arena / 1 = blob data, offset, bytes, 0)
    op table: per op a record: word 0 = type | (record words << 16), then int32 parameters in
      the order of OP_FIELDS (blob offsets for weights, biases, multipliers, shifts; 0xFFFFFFFF =
      none; scratch = an arena offset)
    data: int8 weights and constant tensors, int32 biases, multipliers and shifts (each 4-aligned)
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.util.atomic import write_text_atomic

from .c_arrays import _ALIGN_MACRO, _banner, _hex_lines

MAGIC = b"ECNN"
VERSION = 1
HEADER_BYTES = 64
NONE = 0xFFFFFFFF
ALIGN = 4
NATIVE_HEADER = "ecg_native_model.h"
NATIVE_SOURCE = "ecg_native_model.c"

OP_TYPES = {"PAD": 1, "RESHAPE": 2, "CONV_2D": 3, "FULLY_CONNECTED": 4, "ADD": 5, "MAX_POOL_2D": 6, "MEAN": 7}
OP_FIELDS: dict[str, tuple[str, ...]] = {
    "PAD": ("in", "out", "d0", "d1", "d2", "d3", "b0", "b1", "b2", "b3", "a0", "a1", "a2", "a3", "pad_value"),
    "RESHAPE": ("in", "out"),
    "CONV_2D": (
        "in", "out", "scratch", "batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
        "stride_h", "stride_w", "dil_h", "dil_w", "pad_h", "pad_w", "input_offset", "output_offset",
        "act_min", "act_max", "filter", "bias", "multipliers", "shifts",
    ),
    "FULLY_CONNECTED": (
        "in", "out", "scratch", "batches", "accum_depth", "out_depth", "input_offset", "output_offset",
        "multiplier", "shift", "act_min", "act_max", "filter", "bias",
    ),
    "ADD": (
        "in1", "in2", "out", "scratch", "size", "input1_offset", "input2_offset", "output_offset", "left_shift",
        "input1_multiplier", "input1_shift", "input2_multiplier", "input2_shift", "output_multiplier",
        "output_shift", "act_min", "act_max",
    ),
    "MAX_POOL_2D": (
        "in", "out", "batches", "in_h", "in_w", "channels", "out_h", "out_w", "filter_h", "filter_w",
        "stride_h", "stride_w", "pad_h", "pad_w", "act_min", "act_max",
    ),
    "MEAN": ("in", "out", "outer", "count", "inner", "requantize", "input_zero_point", "output_zero_point", "multiplier", "shift"),
}  # fmt: skip
"""Parameter order of each op record (after the type word); must match nn_model.c."""


@dataclass
class NativeModel:
    """A model blob for nn_model_init and what the firmware needs to know about it."""

    blob: bytes
    arena_bytes: int
    ops: list[str]
    macs: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_q: tuple[float, int]  # (scale, zero point)
    output_q: tuple[float, int]
    data_bytes: int  # weights, biases, multipliers, shifts and constants in the blob
    scratch_bytes: int  # the largest im2col scratch in the plan
    tensor_offsets: dict[str, int] = field(default_factory=dict)  # arena offset of each activation, by TFLite name
    op_macs: list[int] = field(default_factory=list)  # multiply-accumulates of each op (0 for ops without)

    @property
    def input_bytes(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_bytes(self) -> int:
        return int(np.prod(self.output_shape))


def _u32(v: int) -> int:
    if not -(2**31) <= v < 2**32:
        raise ValueError(f"{v} does not fit a 32-bit field")
    return v & 0xFFFFFFFF


def pack_records(records: list[tuple[str, dict[str, int]]], data_at: int, scratch_at: dict[int, int]) -> bytes:
    """Op records with data offsets made absolute and scratch placed."""
    out = bytearray()
    blob_fields = {"filter", "bias", "multipliers", "shifts"}
    for i, (kind, params) in enumerate(records):
        words = []
        for name in OP_FIELDS[kind]:
            v = params[name]
            if name in blob_fields and v != NONE:
                v += data_at
            elif name == "scratch":
                v = scratch_at.get(i, NONE)
            words.append(_u32(v))
        out += struct.pack("<I", OP_TYPES[kind] | ((len(words) + 1) << 16))
        out += struct.pack(f"<{len(words)}I", *words)
    return bytes(out)


def pack_blob(arena: int, n_tensors: int, n_ops: int, graph_in: int, graph_out: int, tensors_at: int, ops_at: int,
              records: bytes, data_at: int, data: bytes, macs: int, table: bytes) -> bytes:
    """Header, CRC-32, tensor table, op records and data as one blob (the layout above)."""
    total = data_at + len(data)
    body = struct.pack("<11I", arena, n_tensors, n_ops, graph_in, graph_out, tensors_at, ops_at, len(records), data_at, len(data), _u32(min(macs, 2**32 - 1)))
    rest = body + table + records + data
    head = MAGIC + struct.pack("<3I", VERSION, HEADER_BYTES, total)
    blob = head + struct.pack("<I", zlib.crc32(rest)) + rest
    if len(blob) != total:
        raise AssertionError("blob size")
    return blob


# --------------------------------------------------------------------------- reading a blob back


@dataclass
class BlobOp:
    kind: str
    offset: int  # byte offset of the record's type word in the blob
    params: dict[str, int]  # signed values; blob offsets and NONE as unsigned


@dataclass
class BlobInfo:
    header: dict[str, int]
    tensors: list[tuple[int, int, int]]  # (location 0 arena / 1 blob, offset, bytes)
    ops: list[BlobOp]


_HEADER_FIELDS = (
    "version", "header_bytes", "blob_bytes", "crc32", "arena_bytes", "tensors", "ops", "input", "output",
    "tensor_table", "op_table", "op_table_bytes", "data", "data_bytes", "macs",
)  # fmt: skip
_UNSIGNED_FIELDS = {"in", "out", "in1", "in2", "scratch", "filter", "bias", "multipliers", "shifts"}


def crc_field(blob: bytes) -> bytes:
    """`blob` with its CRC-32 field recomputed (for tools and tests that patch a blob)."""
    return blob[:16] + struct.pack("<I", zlib.crc32(blob[20:])) + blob[20:]


def read_blob(blob: bytes) -> BlobInfo:
    """Decode a model blob (ValueError if it is not one: magic, version, length or CRC)."""
    if len(blob) < HEADER_BYTES or blob[:4] != MAGIC:
        raise ValueError("not a native model blob")
    header = dict(zip(_HEADER_FIELDS, struct.unpack_from("<15I", blob, 4)))
    if header["version"] != VERSION or header["blob_bytes"] != len(blob) or header["crc32"] != zlib.crc32(blob[20:]):
        raise ValueError("blob version, length or CRC-32 wrong")
    tensors = [struct.unpack_from("<3I", blob, header["tensor_table"] + 16 * k) for k in range(header["tensors"])]
    kinds = {v: k for k, v in OP_TYPES.items()}
    ops, at = [], header["op_table"]
    for _ in range(header["ops"]):
        (word0,) = struct.unpack_from("<I", blob, at)
        kind = kinds[word0 & 0xFFFF]
        names = OP_FIELDS[kind]
        raw = struct.unpack_from(f"<{len(names)}I", blob, at + 4)
        params = {n: (v if n in _UNSIGNED_FIELDS or v < 2**31 else v - 2**32) for n, v in zip(names, raw)}
        ops.append(BlobOp(kind, at, params))
        at += 4 * (word0 >> 16)
    return BlobInfo(header, [tuple(t) for t in tensors], ops)


# --------------------------------------------------------------------------- C sources


def native_sources(native: NativeModel, name: str = "g_ecg_native_model") -> tuple[str, str]:
    """(header, source) of the blob as a 16-byte aligned C array with its sizes as macros."""
    digest = hashlib.sha256(native.blob).hexdigest()
    what = f"native model blob ({len(native.blob)} bytes, sha256 {digest})"
    guard = "ECG_NATIVE_MODEL_H"
    header = (
        _banner(what)
        + f"#ifndef {guard}\n#define {guard}\n\n"
        + '#ifdef __cplusplus\nextern "C" {\n#endif\n\n'
        + "/* The model blob of the native backend (nn/nn_model.h describes the format). */\n"
        + f"extern const unsigned char {name}[];\nextern const unsigned int {name}_len;\n\n"
        + "/* Arena bytes the blob's memory plan needs (activations and im2col scratch). */\n"
        + f"#define ECG_NATIVE_ARENA_BYTES {native.arena_bytes}\n"
        + f"#define ECG_NATIVE_INPUT_BYTES {native.input_bytes}\n"
        + f"#define ECG_NATIVE_OUTPUT_BYTES {native.output_bytes}\n"
        + f"#define ECG_NATIVE_MACS {native.macs}UL\n"
        + "/* The model's ops and tensors: NN_MAX_OPS and NN_MAX_TENSORS (nn_model.h) must be at least these. */\n"
        + f"#define ECG_NATIVE_OPS {len(native.ops)}\n"
        + f"#define ECG_NATIVE_TENSORS {read_blob(native.blob).header['tensors']}\n\n"
        + "#ifdef __cplusplus\n}\n#endif\n\n"
        + f"#endif /* {guard} */\n"
    )
    source = (
        _banner(what)
        + f'#include "{NATIVE_HEADER}"\n\n'
        + _ALIGN_MACRO
        + f"\n\nECG_ALIGNED const unsigned char {name}[] = {{\n"
        + _hex_lines(native.blob)
        + f"\n}};\n\nconst unsigned int {name}_len = {len(native.blob)}u;\n"
    )
    return header, source


def write_native_sources(out_dir: Path, native: NativeModel) -> dict[str, Path]:
    """Write ecg_native_model.h/.c into `out_dir` (atomically); returns {file name: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header, source = native_sources(native)
    paths = {NATIVE_HEADER: out_dir / NATIVE_HEADER, NATIVE_SOURCE: out_dir / NATIVE_SOURCE}
    write_text_atomic(paths[NATIVE_HEADER], header, encoding="ascii")
    write_text_atomic(paths[NATIVE_SOURCE], source, encoding="ascii")
    return paths
