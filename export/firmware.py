"""`ecg-export firmware`: a bundle's generated C sources for the sketch (never committed, never edited).

Writes into one directory, replaced as a whole only when every file was generated:
- `ecg_config.h`: labels, rate, window, hops, filter sections, quality rule, confidence threshold, quantization, model hash,
  and the firmware's RAM budget for the bundle (export/ram.py; ecg_board.h checks it against the board);
- `ecg_ram_error.h`: the #error with the budget's figures that ecg_board.h includes when the model does not fit;
- `ecg_native_model.h/.c`: the model blob of the native backend (nn/ kernels), its arena size;
- `ecg_model_data.h/.c` and `ecg_tflm_ops.h`: the flatbuffer, op resolver and arena for the tflm backend;
- `ecg_protocol_defs.h`: the serial protocol's constants (firmware/PROTOCOL.md);
- `generated.json`: where it came from (bundle, sha256s), for people and for the host tool.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path
from typing import Any

from pipeline.util.atomic import write_text_atomic
from pipeline.data.dataset import replace_dir, write_json_atomic
from pipeline.signal.spec import PreprocessSpec

from .budget import op_names
from .bundle import manifest_uncertainty, quantization, read_manifest, verify_files
from .c_arrays import _banner, _define, _guard, config_header, flatbuffer_array
from .native_blob import read_blob, write_native_sources
from .native_model import build_native_model
from .onnx_export import ExportError
from .protocol_defs import PROTOCOL_DEFS_HEADER, protocol_defs_header
from .ram import RAM_ERROR_HEADER, firmware_ram, ram_error_header

TFLM_OPS_HEADER = "ecg_tflm_ops.h"
# TFLM's MicroMutableOpResolver method for each builtin the project allows (export.budget.TFLM_BUILTINS).
TFLM_ADD_METHOD = {
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "ADD": "AddAdd",
    "MAX_POOL_2D": "AddMaxPool2D", "AVERAGE_POOL_2D": "AddAveragePool2D", "MEAN": "AddMean",
    "FULLY_CONNECTED": "AddFullyConnected", "RESHAPE": "AddReshape", "PAD": "AddPad",
    "QUANTIZE": "AddQuantize", "DEQUANTIZE": "AddDequantize", "SOFTMAX": "AddSoftmax",
    "SQUEEZE": "AddSqueeze", "EXPAND_DIMS": "AddExpandDims", "MUL": "AddMul", "SUB": "AddSub",
    "RELU": "AddRelu", "LOGISTIC": "AddLogistic", "CONCATENATION": "AddConcatenation",
    "STRIDED_SLICE": "AddStridedSlice",
}  # fmt: skip
# The host measures TFLM's arena with 64-bit pointers; a 32-bit MCU needs less. Keep a margin anyway.
TFLM_ARENA_MARGIN = 1.10


def tflm_arena_bytes(measured: int) -> int:
    """The tflm backend's arena for TFLM's measured need (with TFLM_ARENA_MARGIN, 16-byte multiple)."""
    return int(measured * TFLM_ARENA_MARGIN + 15) // 16 * 16


def tflm_ops_header(tflite: bytes, arena_bytes: int) -> str:
    """`ecg_tflm_ops.h`: the op resolver's size and registrations, and the arena for the tflm backend."""
    ops = sorted(set(op_names(tflite)))
    missing = [op for op in ops if op not in TFLM_ADD_METHOD]
    if missing:
        raise ExportError(f"no TFLM op resolver method known for {', '.join(missing)}")
    guard = _guard(TFLM_OPS_HEADER)
    calls = " ".join(f"(resolver).{TFLM_ADD_METHOD[op]}();" for op in ops)
    return (
        _banner("TFLM op resolver and arena for the tflm backend")
        + f"#ifndef {guard}\n#define {guard}\n\n"
        + _define("ECG_TFLM_NUM_OPS", str(len(ops)))
        + _define("ECG_TFLM_REGISTER_OPS(resolver)", calls)
        + _define("ECG_TFLM_ARENA_BYTES", str(tflm_arena_bytes(arena_bytes)))
        + f"\n#endif /* {guard} */\n"
    )


def generate_firmware(bundle: Path, out: Path) -> dict[str, Any]:
    """Check the bundle, then write every generated source into `out` (replaced atomically)."""
    bundle, out = Path(bundle), Path(out)
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    spec = PreprocessSpec.from_dict(manifest["spec"])
    if spec.filter != "causal":
        raise ExportError(f"bundle {bundle}: its spec uses the {spec.filter} filter; the device runs the causal filter only")
    tflite = (bundle / "model_int8.tflite").read_bytes()
    native = build_native_model(tflite)
    in_q, out_q = quantization(manifest)
    in_leads = int(manifest["quantization"]["input"]["shape"][-1])
    sha = hashlib.sha256(tflite).hexdigest()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        ram = firmware_ram(native.arena_bytes, spec.window, len(spec.sos()), len(native.ops), read_blob(native.blob).header["tensors"],
                           tflm_arena_bytes(int(manifest["budget"]["arena_bytes"])))  # fmt: skip
        config = config_header(spec, manifest["labels"], in_q, out_q, sha, in_leads, uncertainty=manifest_uncertainty(manifest), ram=ram)
        write_text_atomic(tmp / "ecg_config.h", config, encoding="ascii")
        write_text_atomic(tmp / RAM_ERROR_HEADER, ram_error_header(ram, _banner("the RAM check's message")), encoding="ascii")
        header, source = flatbuffer_array(tflite)
        write_text_atomic(tmp / "ecg_model_data.h", header, encoding="ascii")
        write_text_atomic(tmp / "ecg_model_data.c", source, encoding="ascii")
        write_text_atomic(tmp / TFLM_OPS_HEADER, tflm_ops_header(tflite, int(manifest["budget"]["arena_bytes"])), encoding="ascii")
        write_native_sources(tmp, native)
        write_text_atomic(tmp / PROTOCOL_DEFS_HEADER, protocol_defs_header(), encoding="ascii")
        info = {
            "bundle": str(bundle.resolve()),
            "model_sha256": sha,
            "spec_fingerprint": spec.fingerprint(),
            "labels": list(manifest["labels"]),
            "native": {"arena_bytes": native.arena_bytes, "blob_bytes": len(native.blob), "macs": native.macs, "ops": native.ops},
            "tflm_arena_bytes": int(manifest["budget"]["arena_bytes"]),
            "ram": {"arena": ram.arena, "app_state": ram.app_state, "model_tables": ram.model_tables, "model_ram_bytes": ram.total,
                    "model_ram_bytes_tflm": ram.total_tflm, "beats": ram.beats},  # fmt: skip
            "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tmp.iterdir())},
        }
        write_json_atomic(tmp / "generated.json", info)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
