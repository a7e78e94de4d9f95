"""The native int8 backend (firmware/ecg_edge/src/nn, export/native_model.py, export/native_blob.py) against TensorFlow Lite Micro.

Single-op int8 models with random shapes, quantization and edge values run through TFLM and through
nn_runner built several ways (host optimized path, NN_FORCE_PORTABLE, AddressSanitizer +
UndefinedBehaviorSanitizer; under QEMU the Cortex-M4 builds whose kernels use the DSP instructions):
every output byte must be identical. Then the whole MCU student, the exporter's refusals, corrupt
blobs, the generated C sources and static analysis.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from conftest import require_m4_toolchain

import tflite_ops as ops
from export.native_blob import MAGIC, OP_FIELDS, NativeModel, crc_field, read_blob, write_native_sources
from export.native_model import UnsupportedModelError, build_native_model

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
NN_SRC = FIRMWARE / "ecg_edge" / "src" / "nn"
N_INPUTS = 10

# --------------------------------------------------------------------------- building nn_runner


@dataclass(frozen=True)
class Build:
    name: str
    target: str  # host, host-asan, cortex-m4
    cflags: str = ""


HOST_BUILDS = (
    Build("optimized", "host"),
    Build("portable", "host", "-DNN_FORCE_PORTABLE=1"),
    Build("asan", "host-asan"),
    Build("asan-portable", "host-asan", "-DNN_FORCE_PORTABLE=1"),
)
WRONG_ROUNDING = Build("wrong-rounding", "host", "-DNN_TEST_WRONG_ROUNDING=1")
SINGLE_ROUNDING = Build("single-rounding", "host", "-DNN_SINGLE_ROUNDING=1")
M4_BUILDS = (Build("m4-optimized", "cortex-m4"), Build("m4-portable", "cortex-m4", "-DNN_FORCE_PORTABLE=1"))


def build_runner(build: Build, root: Path) -> Path:
    """nn_runner built by firmware/Makefile into root/<name> (GEN is an empty directory)."""
    gen, out = root / "gen", root / build.name
    gen.mkdir(parents=True, exist_ok=True)
    exe = out / ("nn_runner.elf" if build.target == "cortex-m4" else "nn_runner")
    cmd = ["make", "-s", "-C", str(FIRMWARE), f"TARGET={build.target}", f"GEN={gen}", f"BUILD={out}", f"EXTRA_CFLAGS={build.cflags}", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{build.name} build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return exe


@pytest.fixture(scope="module")
def runners(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nn-build")
    return {b.name: build_runner(b, root) for b in (*HOST_BUILDS, WRONG_ROUNDING, SINGLE_ROUNDING)}


def run_runner(exe: Path, blob: bytes, inputs: np.ndarray, work: Path, stats: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(outputs (N, output bytes) int8, per-inference instructions or None) of nn_runner on the host or under QEMU.

    With `stats`, nn_runner also writes work/opstats.bin (per-op instructions)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.bin").write_bytes(blob)
    np.ascontiguousarray(inputs, dtype=np.int8).tofile(work / "in.bin")
    args = ["model.bin", "in.bin", "out.bin"] + (["stats.bin", "opstats.bin"] if stats else [])
    if exe.suffix == ".elf":
        from export.qemu import run_elf

        result = run_elf(exe, args, cwd=work, timeout=300)
        code, text = result.returncode, result.console
    else:
        proc = subprocess.run([str(exe), *args], cwd=work, capture_output=True, text=True, timeout=300)
        code, text = proc.returncode, proc.stderr
    assert code == 0, f"{exe} exit {code}: {text[-2000:]}"
    out = np.fromfile(work / "out.bin", dtype=np.int8).reshape(len(inputs), -1)
    counts = np.fromfile(work / "stats.bin", dtype="<u8") if stats else None
    return out, counts


def run_raw(exe: Path, work: Path, model: bytes, inputs: bytes) -> subprocess.CompletedProcess:
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.bin").write_bytes(model)
    (work / "in.bin").write_bytes(inputs)
    return subprocess.run([str(exe), "model.bin", "in.bin", "out.bin"], cwd=work, capture_output=True, text=True, timeout=60)


# --------------------------------------------------------------------------- random single-op cases


@dataclass
class Case:
    name: str
    tflite: bytes
    inputs: np.ndarray  # (N, *input shape) int8

    @property
    def native(self) -> NativeModel:
        return build_native_model(self.tflite)


def _inputs(rng: np.random.Generator, shape: tuple[int, ...], n: int = N_INPUTS) -> np.ndarray:
    """Edge values first (all -128, all 127, alternating), then uniform random int8."""
    x = rng.integers(-128, 128, size=(n, *shape), dtype=np.int8)
    x[0], x[1] = -128, 127
    x[2] = np.where(np.arange(int(np.prod(shape))).reshape(shape) % 2 == 0, -128, 127).astype(np.int8)
    return x


def _zero_point(rng: np.random.Generator) -> int:
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def _scale(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.float32(10 ** rng.uniform(lo, hi)))


def _act(rng: np.random.Generator) -> str:
    return str(rng.choice(list(ops.ACTIVATIONS)))


def _out_size(padding: str, n: int, k: int, stride: int, dilation: int = 1) -> int:
    eff = (k - 1) * dilation + 1
    return -(-n // stride) if padding == "SAME" else -(-(n - eff + 1) // stride)


def _typical_output_scale(rng: np.random.Generator, in_scale: float, w_scales: np.ndarray, depth: int) -> float:
    """An output scale that leaves most outputs inside int8 (some channels still saturate)."""
    real = in_scale * float(np.median(w_scales)) * np.sqrt(depth) * 73 * 74
    return float(np.float32(real / 40 * 10 ** rng.uniform(-0.5, 0.5)))


def conv_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    while True:
        n = int(rng.choice([1, 1, 1, 2]))
        in_h, in_w = int(rng.choice([1, 1, 2, 3, 5])), int(rng.integers(1, 40))
        in_c = int(rng.choice([1, 2, 3, 4, 5, 7, 8, 12, 16, 24]))
        k_h, k_w = int(rng.integers(1, min(in_h, 3) + 1)), int(rng.integers(1, 9))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 5)))
        dilation = (int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 1, 2, 3])))
        padding = str(rng.choice(["SAME", "VALID"]))
        out_h, out_w = (_out_size(padding, in_h, k_h, stride[0], dilation[0]), _out_size(padding, in_w, k_w, stride[1], dilation[1]))
        if out_h >= 1 and out_w >= 1:
            break
    out_c = int(rng.choice([1, 2, 3, 5, 6, 8, 16]))
    w = rng.integers(-127, 128, size=(out_c, k_h, k_w, in_c)).astype(np.int8)
    w[0] = 127 if out_c > 1 else w[0]  # one channel at the weight extreme
    w_scales = (10 ** rng.uniform(-4, -1, size=out_c)).astype(np.float32)  # per-channel scales spanning decades
    in_q = (_scale(rng, -2.5, -0.5), _zero_point(rng))
    depth = k_h * k_w * in_c
    out_q = (_typical_output_scale(rng, in_q[0], w_scales, depth), _zero_point(rng))
    bias = None if rng.random() < 0.25 else rng.integers(-60 * depth * 74, 60 * depth * 74 + 1, size=out_c).astype(np.int32)
    model = ops.conv2d_model(
        [n, in_h, in_w, in_c], w, bias, w_scales, in_q, out_q, [n, out_h, out_w, out_c],
        padding=padding, stride=stride, dilation=dilation, activation=_act(rng),
    )  # fmt: skip
    name = f"conv{seed}_{n}x{in_h}x{in_w}x{in_c}_k{k_h}x{k_w}_s{stride[0]}{stride[1]}_d{dilation[0]}{dilation[1]}_{padding}_oc{out_c}"
    return Case(name, model, _inputs(rng, (n, in_h, in_w, in_c)))


def conv_extreme_case(seed: int) -> Case:
    """Even seeds: accumulators near the int32 limit (the optimized path's short rounding does not
    apply). Odd seeds: per-channel multipliers from 1/8 to 8 on small accumulators (shifts up to +4:
    TFLM shifts left before the high multiply)."""
    rng = np.random.default_rng(seed)
    in_w, in_c, out_c, k_w = int(rng.integers(4, 30)), 8, 6, 3
    depth = k_w * in_c
    in_q, out_q = (0.02, int(rng.choice([-128, 127]))), (0.5, _zero_point(rng))
    factors = np.array([0.125, 0.3, 0.55, 1.0, 2.5, 8.0])
    if seed % 2 == 0:
        w = np.where(rng.random((out_c, 1, k_w, in_c)) < 0.5, -127, 127).astype(np.int8)
        w_scales = (out_q[0] / in_q[0] * factors / (depth * 127 * 255)).astype(np.float32)
        bias = np.array([s * (2**31 - 1 - 2 * depth * 127 * 255) for s in (1, -1, 1, -1, 0, 0)], dtype=np.int32)
    else:  # one tap of weight +-1 per channel, so that some outputs stay inside int8
        w = np.zeros((out_c, 1, k_w, in_c), dtype=np.int8)
        w[np.arange(out_c), 0, rng.integers(0, k_w, out_c), rng.integers(0, in_c, out_c)] = rng.choice([-1, 1], out_c)
        w_scales = (out_q[0] / in_q[0] * factors).astype(np.float32)  # multipliers 1/8 .. 8
        bias = rng.integers(-20, 21, size=out_c).astype(np.int32)
    model = ops.conv2d_model([1, 1, in_w, in_c], w, bias, w_scales, in_q, out_q, [1, 1, in_w, out_c], padding="SAME", activation=_act(rng))
    return Case(f"conv_extreme{seed}_{in_w}", model, _inputs(rng, (1, 1, in_w, in_c)))


def fc_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    batches, depth, out = int(rng.integers(1, 7)), int(rng.integers(1, 70)), int(rng.integers(1, 20))
    w = rng.integers(-127, 128, size=(out, depth)).astype(np.int8)
    w_scale = _scale(rng, -4, -1)
    in_q = (_scale(rng, -2.5, -0.5), _zero_point(rng))
    out_q = (_typical_output_scale(rng, in_q[0], np.array([w_scale]), depth), _zero_point(rng))
    bias = None if rng.random() < 0.3 else rng.integers(-40 * depth * 74, 40 * depth * 74 + 1, size=out).astype(np.int32)
    model = ops.fully_connected_model([batches, depth], w, bias, w_scale, in_q, out_q, activation=_act(rng))
    return Case(f"fc{seed}_{batches}x{depth}_to_{out}", model, _inputs(rng, (batches, depth)))


def add_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    big = seed % 2 == 0  # 1024 elements or more: the optimized ADD's lookup tables
    shape = [1, int(rng.integers(1, 4)), int(rng.integers(130, 300) if big else rng.integers(1, 60)), int(rng.integers(8, 12) if big else rng.integers(1, 9))]
    c = shape[-1]
    x_q = (_scale(rng, -2, 0), _zero_point(rng))
    y_q = (float(np.float32(x_q[0] * 10 ** rng.uniform(-1, 1))), _zero_point(rng))
    out_q = (float(np.float32(max(x_q[0], y_q[0]) * 10 ** rng.uniform(-0.3, 0.7))), _zero_point(rng))
    w = rng.integers(-127, 128, size=(c, 1, 1, c)).astype(np.int8)
    w_scales = np.full(c, y_q[0] / (x_q[0] * 127 * np.sqrt(c) / 3), dtype=np.float32)
    model = ops.add_model(shape, x_q, y_q, out_q, w, w_scales, activation=_act(rng), swap=bool(rng.random() < 0.5))
    return Case(f"add{seed}_{'x'.join(map(str, shape))}", model, _inputs(rng, tuple(shape)))


def add_const_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    shape = [1, int(rng.integers(1, 300)), int(rng.integers(4, 9) if seed % 2 == 0 else rng.integers(1, 4))]
    q1, q2 = (_scale(rng, -2, 0), _zero_point(rng)), (_scale(rng, -2, 0), _zero_point(rng))
    out_q = (float(np.float32(max(q1[0], q2[0]) * 10 ** rng.uniform(-0.3, 0.7))), _zero_point(rng))
    const = rng.integers(-128, 128, size=shape).astype(np.int8)
    model = ops.add_const_model(shape, q1, q2, out_q, const, activation=_act(rng))
    return Case(f"addconst{seed}_{'x'.join(map(str, shape))}", model, _inputs(rng, tuple(shape)))


def max_pool_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    while True:
        shape = [int(rng.choice([1, 2])), int(rng.choice([1, 1, 3, 4])), int(rng.integers(1, 50)), int(rng.choice([1, 3, 4, 5, 8, 16]))]
        filt = (int(rng.integers(1, min(shape[1], 3) + 1)), int(rng.integers(1, 5)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
        padding = str(rng.choice(["SAME", "VALID"]))
        out = [shape[0], _out_size(padding, shape[1], filt[0], stride[0]), _out_size(padding, shape[2], filt[1], stride[1]), shape[3]]
        if min(out) >= 1:
            break
    q = (_scale(rng, -2, 0), _zero_point(rng))
    model = ops.pool_model("MAX_POOL_2D", shape, out, q, filt, stride, padding=padding, activation=_act(rng))
    return Case(f"maxpool{seed}_{'x'.join(map(str, shape))}_f{filt}_s{stride}_{padding}", model, _inputs(rng, tuple(shape)))


def mean_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    shape, axes = [
        ([1, int(rng.integers(1, 200)), int(rng.integers(1, 50))], [1]),
        ([1, int(rng.integers(1, 9)), int(rng.integers(1, 30)), int(rng.integers(1, 20))], [1, 2]),
        ([1, int(rng.integers(1, 9)), int(rng.integers(1, 30)), int(rng.integers(1, 20))], [-2]),
        ([2, int(rng.integers(1, 40)), int(rng.integers(1, 9))], [2]),
        ([1, 1, int(rng.integers(1, 100)), int(rng.integers(1, 40))], [2]),
    ][seed % 5]
    in_q = (_scale(rng, -2, 0), _zero_point(rng))
    same = rng.random() < 0.4  # TFLM's plain sum / count path
    out_q = in_q if same else (float(np.float32(in_q[0] * 10 ** rng.uniform(-1, 0.5))), _zero_point(rng))
    model = ops.mean_model(shape, axes, in_q, out_q, keep_dims=bool(rng.random() < 0.7))
    return Case(f"mean{seed}_{'x'.join(map(str, shape))}_axes{axes}_{'same' if same else 'requant'}", model, _inputs(rng, tuple(shape)))


def pad_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 5))
    shape = [int(rng.integers(1, 12)) for _ in range(rank)]
    paddings = [(int(rng.integers(0, 4)), int(rng.integers(0, 4))) for _ in range(rank)]
    q = (_scale(rng, -2, 0), _zero_point(rng))
    return Case(f"pad{seed}_{'x'.join(map(str, shape))}_{paddings}", ops.pad_model(shape, paddings, q), _inputs(rng, tuple(shape)))


def reshape_pad_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    length, ch = int(rng.integers(2, 100)), int(rng.integers(1, 9))
    q = (_scale(rng, -2, 0), _zero_point(rng))
    model = ops.reshape_pad_model([1, length, ch], [1, 1, length, ch], [(0, 0), (0, 0), (2, 2), (0, 0)], q)
    return Case(f"reshape_pad{seed}_{length}x{ch}", model, _inputs(rng, (1, length, ch)))


def rounding_case() -> Case:
    """A 1x1 CONV_2D whose multiplier (found by a search over weights and scales) makes TFLite's single
    and double rounding of MultiplyByQuantizedMultiplier differ for some of the 256 inputs."""
    w = np.full((1, 1, 1, 1), 58, dtype=np.int8)
    model = ops.conv2d_model([1, 1, 1, 1], w, None, [0.05624258890748024], (0.05, 3), (0.9, -2), [1, 1, 1, 1])
    return Case("rounding", model, np.arange(-128, 128, dtype=np.int8).reshape(256, 1, 1, 1, 1))


GENERATORS: dict[str, tuple[Callable[[int], Case], int]] = {
    "conv": (conv_case, 16),
    "conv_extreme": (conv_extreme_case, 2),
    "fc": (fc_case, 6),
    "add": (add_case, 5),
    "addconst": (add_const_case, 3),
    "maxpool": (max_pool_case, 6),
    "mean": (mean_case, 10),
    "pad": (pad_case, 5),
    "reshape_pad": (reshape_pad_case, 2),
}
CASE_IDS = [f"{kind}-{i}" for kind, (_, count) in GENERATORS.items() for i in range(count)]


def make_case(case_id: str) -> Case:
    kind, i = case_id.rsplit("-", 1)
    fn, _ = GENERATORS[kind]
    return fn(1000 * (list(GENERATORS).index(kind) + 1) + int(i))


@pytest.fixture(scope="module")
def cases() -> dict[str, tuple[Case, np.ndarray]]:
    """Every case with TFLM's outputs (N, output bytes)."""
    out = {}
    for cid in [*CASE_IDS, "rounding"]:
        case = rounding_case() if cid == "rounding" else make_case(cid)
        out[cid] = (case, ops.run_tflm(case.tflite, case.inputs).reshape(len(case.inputs), -1))
    return out


# --------------------------------------------------------------------------- kernels vs TFLM


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_single_op_matches_tflm(case_id: str, cases, runners, tmp_path: Path) -> None:
    case, expected = cases[case_id]
    native = case.native
    assert native.ops == ops_in(case.tflite)
    got = {}
    for build in HOST_BUILDS:
        got[build.name], _ = run_runner(runners[build.name], native.blob, case.inputs, tmp_path / build.name)
        mismatch = np.argwhere(got[build.name] != expected)
        assert not len(mismatch), f"{case.name} {build.name}: {len(mismatch)} bytes differ from TFLM, first at {mismatch[0].tolist()}"
    np.testing.assert_array_equal(got["optimized"], got["portable"])


def ops_in(tflite: bytes) -> list[str]:
    from export.budget import op_names

    return op_names(tflite)


def test_cases_exercise_the_edges(cases) -> None:
    """The random cases reach what they claim: saturated outputs, every activation, both MEAN paths,
    per-channel scales spanning decades, zero points at both ends."""
    outputs = np.concatenate([exp.reshape(-1) for _, exp in cases.values()])
    assert (outputs == -128).any() and (outputs == 127).any()
    names = " ".join(c.name for c, _ in cases.values())
    assert "_same" in names and "_requant" in names and "SAME" in names and "VALID" in names
    infos = [read_blob(c.native.blob) for c, _ in cases.values()]
    convs = [op.params for info in infos for op in info.ops if op.kind == "CONV_2D"]
    assert any(p["dil_w"] > 1 for p in convs) and any(p["stride_w"] > 1 for p in convs) and any(p["batches"] > 1 for p in convs)
    assert {p["output_offset"] for p in convs} >= {-128, 127}
    act = {(p["act_min"], p["act_max"]) for p in convs}
    assert len(act) >= 4 and any(lo > -128 for lo, _ in act) and any(hi < 127 for _, hi in act)
    adds = [op.params for info in infos for op in info.ops if op.kind == "ADD"]
    assert any(p["scratch"] != 0xFFFFFFFF for p in adds) and any(p["scratch"] == 0xFFFFFFFF for p in adds)  # tables and no tables
    shifts = [struct.unpack_from(f"<{op.params['out_c']}i", c.native.blob, op.params["shifts"]) for c, _ in cases.values()
              for op in read_blob(c.native.blob).ops if op.kind == "CONV_2D"]  # fmt: skip
    assert max(max(sh) for sh in shifts) > 0 and min(min(sh) for sh in shifts) < -10  # left shifts, and large right ones


def test_optimized_path_is_planned(cases) -> None:
    """Every CONV_2D and FULLY_CONNECTED has its im2col scratch in the plan (else the optimized build
    would silently run the portable kernels), and a large ADD its tables."""
    for case, _ in cases.values():
        for op in read_blob(case.native.blob).ops:
            if op.kind in ("CONV_2D", "FULLY_CONNECTED"):
                assert op.params["scratch"] != 0xFFFFFFFF, case.name
            if op.kind == "ADD" and op.params["size"] >= 1024:
                assert op.params["scratch"] != 0xFFFFFFFF, case.name


def test_tflm_rounds_twice(cases, runners, tmp_path: Path) -> None:
    """The tflite-micro wheel uses double rounding (SaturatingRoundingDoublingHighMul, then
    RoundingDivideByPOT): the default build matches it where the single-rounding build does not."""
    case, expected = cases["rounding"]
    blob = case.native.blob
    double, _ = run_runner(runners["optimized"], blob, case.inputs, tmp_path / "double")
    single, _ = run_runner(runners["single-rounding"], blob, case.inputs, tmp_path / "single")
    np.testing.assert_array_equal(double, expected)
    assert (single != expected).any()


def test_wrong_rounding_is_caught(cases, runners, tmp_path: Path) -> None:
    """A build whose rounding divide truncates disagrees with TFLM on the same cases."""
    wrong = []
    for cid, (case, expected) in cases.items():
        got, _ = run_runner(runners["wrong-rounding"], case.native.blob, case.inputs, tmp_path / cid)
        if not np.array_equal(got, expected):
            wrong.append(cid)
    assert "rounding" in wrong
    assert sum(c.startswith("conv") for c in wrong) >= 8, wrong
    assert any(c.startswith("add") for c in wrong) and any(c.startswith("mean") for c in wrong), wrong


def _mbqm(x: int, m: int, shift: int) -> int:
    """TFLite's double-rounding MultiplyByQuantizedMultiplier in Python integers (test oracle)."""
    left, right = max(shift, 0), max(-shift, 0)
    ab = x * (1 << left) * m
    v = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    y = abs(v) // (1 << 31) * (1 if v >= 0 else -1)
    mask = (1 << right) - 1
    return (y >> right) + (1 if (y & mask) > (mask >> 1) + (1 if y < 0 else 0) else 0)


# Scales where the float32 product input x filter and the double product give multipliers that
# requantize some of 127 * [-128, 127] differently (found by a search over random scales).
PRODUCT_SCALES = (0.042775802314281464, 0.04396161064505577, 0.10188256204128265)


@pytest.mark.parametrize("kind", ["CONV_2D", "FULLY_CONNECTED"])
def test_multiplier_product_precision(kind: str, runners, tmp_path: Path) -> None:
    """The multipliers of CONV_2D (per channel) and of FULLY_CONNECTED both come from
    double(in) * double(filter) / double(out) in the tflite-micro runtime (older TFLM took the float
    product in * filter for FULLY_CONNECTED): the exporter matches TFLM, a blob patched to the
    float-product multiplier does not."""
    from export.native_model import quantize_multiplier

    s_in, s_w, s_out = PRODUCT_SCALES
    float_m = quantize_multiplier(float(np.float32(s_in) * np.float32(s_w)) / s_out)
    double_m = quantize_multiplier(s_in * s_w / s_out)
    assert float_m != double_m
    accs = 127 * np.arange(-128, 128)
    assert any(np.clip(_mbqm(int(a), *float_m), -128, 127) != np.clip(_mbqm(int(a), *double_m), -128, 127) for a in accs)
    w = np.full((1, 1, 1, 1), 127, dtype=np.int8)
    if kind == "CONV_2D":
        model = ops.conv2d_model([1, 1, 1, 1], w, None, [s_w], (s_in, 0), (s_out, 0), [1, 1, 1, 1])
        x = np.arange(-128, 128, dtype=np.int8).reshape(256, 1, 1, 1, 1)
    else:
        model = ops.fully_connected_model([1, 1], w.reshape(1, 1), None, s_w, (s_in, 0), (s_out, 0))
        x = np.arange(-128, 128, dtype=np.int8).reshape(256, 1, 1)
    expected = ops.run_tflm(model, x).reshape(256, -1)
    blob = build_native_model(model).blob
    op = read_blob(blob).ops[0]
    ours, other = double_m, float_m
    if kind == "CONV_2D":
        assert (struct.unpack_from("<i", blob, op.params["multipliers"])[0], struct.unpack_from("<i", blob, op.params["shifts"])[0]) == ours
        patched = bytearray(blob)
        struct.pack_into("<i", patched, op.params["multipliers"], other[0])
        struct.pack_into("<i", patched, op.params["shifts"], other[1])
    else:
        assert (op.params["multiplier"], op.params["shift"]) == ours
        patched = bytearray(blob)
        struct.pack_into("<ii", patched, op.offset + 4 * (1 + OP_FIELDS["FULLY_CONNECTED"].index("multiplier")), *other)
    got, _ = run_runner(runners["optimized"], blob, x, tmp_path / "ours")
    np.testing.assert_array_equal(got, expected)
    wrong, _ = run_runner(runners["optimized"], crc_field(bytes(patched)), x, tmp_path / "other")
    assert (wrong != expected).any()


def test_mean_runs_quantized_mean_or_sum(runners, tmp_path: Path) -> None:
    """With equal input and output quantization the wheel's TFLM still runs QuantizedMeanOrSum (the
    exporter's default); plain_mean=True gives the int32 sum / count of older TFLM releases instead,
    which here differs."""
    shape, q = [2, 14, 8], (0.0106548802, 127)
    model = ops.mean_model(shape, [2], q, q, keep_dims=True)
    rng = np.random.default_rng(11)
    x = _inputs(rng, tuple(shape))
    expected = ops.run_tflm(model, x).reshape(len(x), -1)
    got, _ = run_runner(runners["asan"], build_native_model(model).blob, x, tmp_path / "default")
    np.testing.assert_array_equal(got, expected)
    plain, _ = run_runner(runners["asan"], build_native_model(model, plain_mean=True).blob, x, tmp_path / "plain")
    sums = x.astype(np.int64).sum(axis=-1).reshape(len(x), -1)
    np.testing.assert_array_equal(plain, (np.abs(sums) // shape[-1]) * np.sign(sums))  # C division truncates
    assert (plain != expected).any()


# --------------------------------------------------------------------------- exporter

def test_quantize_multiplier_edges() -> None:
    from export.native_model import quantize_multiplier

    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    # q * 2^31 rounds up to 2^31: halve it and raise the shift
    assert quantize_multiplier(float(np.nextafter(1.0, 0.0))) == (1 << 30, 1)
    # 0.75 * 2^31 is exact; a half in the last place rounds away from zero
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    assert quantize_multiplier((2**30 + 0.5) / 2**31) == (2**30 + 1, 0)
    assert quantize_multiplier(2.0**-40) == (0, 0)  # shift below -31: zero


def test_softmax_is_named() -> None:
    with pytest.raises(UnsupportedModelError, match=r"operator 0 SOFTMAX is not supported by the native backend"):
        build_native_model(ops.softmax_model([1, 10], (0.1, 0)))


def test_broadcasting_add_is_refused() -> None:
    model = ops.add_const_model([1, 5, 3], (0.1, 0), (0.1, 0), (0.2, 0), np.ones((1, 1, 3), dtype=np.int8))
    with pytest.raises(UnsupportedModelError, match=r"operator 0 ADD: broadcasting \(inputs \[1, 5, 3\] and \[1, 1, 3\]"):
        build_native_model(model)


def test_accumulator_overflow_is_refused() -> None:
    w = np.full((2, 1, 1, 4), 127, dtype=np.int8)
    bias = np.array([2**31 - 1000, 0], dtype=np.int32)
    model = ops.conv2d_model([1, 1, 1, 4], w, bias, [0.01, 0.01], (0.1, 0), (10.0, 0), [1, 1, 1, 2])
    with pytest.raises(UnsupportedModelError, match=r"operator 0 CONV_2D: the worst-case accumulator .* could overflow int32"):
        build_native_model(model)


def test_float_model_is_refused() -> None:
    g = ops.Graph()
    x = g.tensor([1, 4], np.float32)
    y = g.tensor([1, 4], np.float32)
    p = g.tensor([2, 2], np.int32, data=np.zeros((2, 2), dtype=np.int32))
    g.op("PAD", [x, p], [y])
    with pytest.raises(UnsupportedModelError, match=r"the model input: tensor 't0' is FLOAT32; the native backend runs int8 only"):
        build_native_model(g.build([x], [y]))


def test_not_a_flatbuffer() -> None:
    with pytest.raises(UnsupportedModelError, match="not a TFLite flatbuffer"):
        build_native_model(b"\0" * 64)


def test_blob_layout(cases) -> None:
    case, _ = cases["conv-0"]
    native = case.native
    info = read_blob(native.blob)
    assert native.blob[:4] == MAGIC and info.header["arena_bytes"] == native.arena_bytes
    for section in ("tensor_table", "op_table", "data"):
        assert info.header[section] % 4 == 0
    for where, offset, size in info.tensors:
        assert (where, offset % 4) == (0, 0) or where == 1
        assert offset + size <= (native.arena_bytes if where == 0 else len(native.blob))
    assert native.input_bytes == case.inputs[0].size


# --------------------------------------------------------------------------- corrupt blobs


@pytest.fixture(scope="module")
def good_blob(cases) -> tuple[bytes, np.ndarray]:
    case, _ = cases["conv-1"]
    return case.native.blob, case.inputs


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:-4], "blob length or section bounds wrong"),
        (lambda b: b[:100] + bytes([b[100] ^ 0x40]) + b[101:], "checksum mismatch"),
        (lambda b: b"XCNN" + b[4:], "bad magic"),
        (lambda b: crc_field(b[:4] + struct.pack("<I", 7) + b[8:]), "unsupported blob version"),
        (lambda b: b"", "bad magic"),
    ],
    ids=["truncated", "bit-flip", "magic", "version", "empty"],
)
def test_corrupt_blob_is_refused(mutate, message: str, good_blob, runners, tmp_path: Path) -> None:
    blob, inputs = good_blob
    for build in ("optimized", "asan"):
        proc = run_raw(runners[build], tmp_path / build, mutate(blob), inputs.tobytes())
        assert proc.returncode == 2, proc.stderr
        assert "nn_runner: model model.bin refused: " in proc.stderr and message in proc.stderr


def test_inconsistent_op_is_refused_with_its_index(good_blob, runners, tmp_path: Path) -> None:
    blob, inputs = good_blob
    info = read_blob(blob)
    conv = next(i for i, op in enumerate(info.ops) if op.kind == "CONV_2D")
    at = info.ops[conv].offset + 4 * (1 + OP_FIELDS["CONV_2D"].index("in_h"))
    bad = crc_field(blob[:at] + struct.pack("<i", info.ops[conv].params["in_h"] + 1) + blob[at + 4 :])
    proc = run_raw(runners["asan"], tmp_path, bad, inputs.tobytes())
    assert proc.returncode == 2
    assert f"op parameters inconsistent or out of range (op record {conv})" in proc.stderr


def test_partial_input_is_refused(good_blob, runners, tmp_path: Path) -> None:
    blob, inputs = good_blob
    proc = run_raw(runners["asan"], tmp_path, blob, inputs.tobytes()[:-1])
    assert proc.returncode == 1
    assert f"in.bin is not a whole number of inputs of {inputs[0].size} bytes" in proc.stderr


def test_arena_too_small_is_refused(runners, tmp_path: Path) -> None:
    blob = build_native_model(ops.pad_model([1, 70000], [(0, 0), (1, 1)], (0.1, 0))).blob
    proc = run_raw(runners["asan"], tmp_path, blob, bytes(70000))
    assert proc.returncode == 2
    assert "arena smaller than the model needs" in proc.stderr and "NN_RUNNER_ARENA_BYTES" in proc.stderr


@pytest.mark.slow
def test_mutated_blobs_never_crash(good_blob, runners, tmp_path: Path) -> None:
    """Random words overwritten (CRC recomputed, so only validation stands between them and the
    kernels): the sanitizer build either refuses the blob or runs it, never faults."""
    blob, inputs = good_blob
    info = read_blob(blob)
    end = info.header["data"]  # header, tensor table and op records
    rng = np.random.default_rng(7)
    refused = 0
    for k in range(150):
        b = bytearray(blob)
        for _ in range(int(rng.integers(1, 4))):
            at = 20 + 4 * int(rng.integers(0, (end - 20) // 4))
            b[at : at + 4] = struct.pack("<I", int(rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, rng.integers(0, 2**32)])))
        proc = run_raw(runners["asan"], tmp_path / str(k), crc_field(bytes(b)), inputs.tobytes())
        assert proc.returncode in (0, 2), f"mutation {k}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
        refused += proc.returncode == 2
    assert refused > 100


# --------------------------------------------------------------------------- the MCU student


def convert_student(out: Path, **model_kwargs) -> dict:
    """An untrained, seeded `mcu` model through ONNX and onnx2tf (calibrated on random windows)."""
    import torch

    from export.onnx_export import export_onnx
    from export.tflite_convert import convert
    from pipeline.models.checkpoint import Checkpoint
    from pipeline.models.architectures import build_model, model_config
    from pipeline.signal.spec import PreprocessSpec

    torch.manual_seed(20)
    model = build_model("mcu", **model_kwargs)
    spec = PreprocessSpec()
    ckpt = Checkpoint(model, ("NORMAL", "MI", "ARRHYTHMIA"), spec, ["II"], model_config(model), {}, {})
    rng = np.random.default_rng(3)
    converted = convert(export_onnx(ckpt, out / "model.onnx"), rng.standard_normal((32, 1, spec.window)).astype(np.float32), out)
    tflite = converted.int8_path.read_bytes()
    windows = rng.standard_normal((24, spec.window, 1)) * rng.uniform(0.3, 3, size=(24, 1, 1))
    x = np.clip(np.round(windows / converted.input_q.scale) + converted.input_q.zero_point, -128, 127).astype(np.int8)[:, None]
    x[0], x[1] = -128, 127
    return {"tflite": tflite, "native": build_native_model(tflite), "inputs": x, "tflm": ops.run_tflm(tflite, x).reshape(len(x), -1)}


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> dict:
    return convert_student(tmp_path_factory.mktemp("student"))


@pytest.mark.slow
def test_student_matches_tflm(student, runners, tmp_path: Path) -> None:
    native = student["native"]
    assert native.ops.count("CONV_2D") >= 10 and {"ADD", "MEAN", "MAX_POOL_2D", "RESHAPE"} <= set(native.ops)
    assert len(student["inputs"]) >= 20 and len(np.unique(student["tflm"], axis=0)) > 1
    for build in ("optimized", "portable", "asan"):
        got, _ = run_runner(runners[build], native.blob, student["inputs"], tmp_path / build)
        np.testing.assert_array_equal(got, student["tflm"], err_msg=build)


@pytest.mark.slow
def test_student_pads_fold_into_convolutions(student, runners, tmp_path: Path) -> None:
    """The student's PAD -> RESHAPE -> CONV_2D (VALID) chains become the convolutions' padding
    (export.native_fold): fewer ops, a smaller blob, no larger arena, the same outputs as with the
    PADs kept (and as TFLM), on the optimized and the sanitizer builds."""
    folded = student["native"]
    kept = build_native_model(student["tflite"], fold_pads=False)
    assert "PAD" not in folded.ops and kept.ops.count("PAD") >= 3
    assert len(folded.ops) == len(kept.ops) - 2 * kept.ops.count("PAD") and len(folded.blob) < len(kept.blob)
    assert folded.arena_bytes <= kept.arena_bytes and folded.macs == kept.macs
    info = read_blob(folded.blob)
    first = info.ops[0]
    assert first.kind == "CONV_2D" and first.params["in"] == info.header["input"] and first.params["pad_w"] > 0  # reads the model input
    for build in ("optimized", "asan"):
        got, _ = run_runner(runners[build], kept.blob, student["inputs"], tmp_path / build)
        np.testing.assert_array_equal(got, student["tflm"], err_msg=build)


@pytest.mark.slow
def test_student_with_max_head_matches_tflm(runners, tmp_path: Path) -> None:
    """head "mean+max": a global MAX_POOL_2D over the 79 steps beside MEAN, the two 1x1 heads added."""
    st = convert_student(tmp_path / "convert", head="mean+max")
    native = st["native"]
    assert native.ops.count("MAX_POOL_2D") == 2 and native.ops.count("MEAN") == 1 and len(np.unique(st["tflm"], axis=0)) > 1
    for build in ("optimized", "portable", "asan"):
        got, _ = run_runner(runners[build], native.blob, st["inputs"], tmp_path / build)
        np.testing.assert_array_equal(got, st["tflm"], err_msg=build)


@pytest.mark.slow
def test_student_arena_is_smaller_than_tflm(student) -> None:
    from export.budget import tflm_arena_bytes

    native = student["native"]
    assert native.arena_bytes <= tflm_arena_bytes(student["tflite"])
    # the plan holds at least the largest set of tensors alive at once
    assert native.arena_bytes >= 313 * 24 * 3


@pytest.mark.slow
def test_generated_sources_run(student, tmp_path: Path) -> None:
    """ecg_native_model.h/.c compile with the kernels into a program whose outputs equal TFLM's."""
    native = student["native"]
    paths = write_native_sources(tmp_path / "gen", native)
    header, source = paths["ecg_native_model.h"].read_text(), paths["ecg_native_model.c"].read_text()
    assert header.startswith("/* Generated by ecg-export") and source.startswith("/* Generated by ecg-export")
    assert f"#define ECG_NATIVE_ARENA_BYTES {native.arena_bytes}\n" in header
    assert f"#define ECG_NATIVE_INPUT_BYTES {native.input_bytes}\n" in header
    assert "ECG_ALIGNED const unsigned char g_ecg_native_model[]" in source
    main = tmp_path / "main.c"
    main.write_text(
        """#include <stdio.h>
#include <string.h>
#include "ecg_native_model.h"
#include "nn_model.h"
static union { int32_t align; int8_t bytes[ECG_NATIVE_ARENA_BYTES]; } arena;
static nn_model m;
int main(void) {
    int8_t x[ECG_NATIVE_INPUT_BYTES];
    size_t i;
    nn_status s = nn_model_init(&m, g_ecg_native_model, g_ecg_native_model_len, arena.bytes, sizeof arena.bytes);
    if (s != NN_OK || nn_model_input_bytes(&m) != sizeof x || nn_model_output_bytes(&m) != ECG_NATIVE_OUTPUT_BYTES) {
        printf("init: %s\\n", nn_status_str(s));
        return 1;
    }
    if (fread(x, 1, sizeof x, stdin) != sizeof x) return 2;
    memcpy(nn_model_input(&m), x, sizeof x);
    if (nn_model_invoke(&m) != NN_OK) return 3;
    for (i = 0; i < nn_model_output_bytes(&m); ++i) printf("%d\\n", nn_model_output(&m)[i]);
    return 0;
}
"""
    )
    exe = tmp_path / "main"
    warn = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wcast-align"]
    cmd = ["cc", "-O1", *warn, f"-I{NN_SRC}", f"-I{tmp_path / 'gen'}", str(main), str(paths["ecg_native_model.c"]), *map(str, NN_SRC.glob("*.c")), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True)
    proc = subprocess.run([str(exe)], input=student["inputs"][5].tobytes(), capture_output=True, check=True)
    assert [int(v) for v in proc.stdout.split()] == student["tflm"][5].tolist()


# --------------------------------------------------------------------------- Cortex-M4 under QEMU


needs_qemu = pytest.mark.usefixtures("m4_toolchain")


@pytest.fixture(scope="module")
def m4_runners(tmp_path_factory) -> dict[str, Path]:
    require_m4_toolchain()
    root = tmp_path_factory.mktemp("nn-m4")
    return {b.name: build_runner(b, root) for b in M4_BUILDS}


@needs_qemu
@pytest.mark.slow
def test_m4_single_ops_match_tflm(cases, m4_runners, tmp_path: Path) -> None:
    """The DSP kernels (inline SMLAD/SXTB16/SSAT/SEL) and the portable ones on the Cortex-M4."""
    for cid, (case, expected) in cases.items():
        for name, exe in m4_runners.items():
            got, _ = run_runner(exe, case.native.blob, case.inputs, tmp_path / name / cid)
            mismatch = np.argwhere(got != expected)
            assert not len(mismatch), f"{case.name} {name}: {len(mismatch)} bytes differ from TFLM, first at {mismatch[0].tolist()}"


@needs_qemu
@pytest.mark.slow
def test_m4_student_matches_tflm_within_budget(student, m4_runners, tmp_path: Path) -> None:
    native = student["native"]
    x = student["inputs"][:4]
    fast, fast_counts = run_runner(m4_runners["m4-optimized"], native.blob, x, tmp_path / "fast", stats=True)
    slow, slow_counts = run_runner(m4_runners["m4-portable"], native.blob, x, tmp_path / "slow", stats=True)
    np.testing.assert_array_equal(fast, student["tflm"][:4])
    np.testing.assert_array_equal(slow, fast)
    per_mac = fast_counts / native.macs
    assert (per_mac <= 1.0).all(), f"optimized path: {per_mac} instructions per MAC"
    assert (slow_counts > 3 * fast_counts).all()
    per_op = np.fromfile(tmp_path / "fast" / "opstats.bin", dtype="<u8").reshape(len(x), len(native.ops))
    assert ((per_op.sum(axis=1) <= fast_counts) & (per_op.sum(axis=1) > 0.95 * fast_counts)).all()
    conv = [i for i, op in enumerate(native.ops) if op == "CONV_2D"]
    assert per_op[0, conv].sum() > 0.8 * fast_counts[0]  # the convolutions are where the time goes


def test_cppcheck_nn_sources() -> None:
    if shutil.which("cppcheck") is None:
        pytest.skip("cppcheck not installed")
    cmd = ["cppcheck", "--std=c99", "--enable=warning,performance,portability", "--error-exitcode=1", "--inline-suppr",
           "--suppress=missingIncludeSystem", "-q", f"-I{NN_SRC}", f"-I{FIRMWARE / 'harness'}", str(NN_SRC), str(FIRMWARE / "harness" / "nn_runner.c")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    assert proc.returncode == 0, proc.stderr


def test_arena_plan_never_overlaps_live_buffers():
    """plan_arena: buffers alive at the same op never share bytes; a dead one's bytes are reused."""
    from export.arena_plan import plan_arena

    buffers = [(100, 0, 1), (60, 1, 2), (100, 2, 3), (8, 3, 3)]  # (bytes, first op, last op)
    offsets, total = plan_arena(buffers)
    for a in range(len(buffers)):
        for c in range(a + 1, len(buffers)):
            if buffers[a][1] <= buffers[c][2] and buffers[c][1] <= buffers[a][2]:
                assert offsets[a] + buffers[a][0] <= offsets[c] or offsets[c] + buffers[c][0] <= offsets[a]
    assert total % 4 == 0 and all(o % 4 == 0 for o in offsets)
    assert total < sum(b[0] for b in buffers)  # buffer 0 and 2 are never live together


def test_op_macs_and_op_instructions(cases) -> None:
    """NativeModel.op_macs adds up to the blob's MACs (CONV_2D and FULLY_CONNECTED carry them), and
    crosscheck's per-op table pairs them with nn_runner's per-op counts."""
    from export.crosscheck import op_instructions

    for cid in ("conv-0", "fc-0", "add-0"):
        native = cases[cid][0].native
        assert len(native.op_macs) == len(native.ops) and sum(native.op_macs) == native.macs == read_blob(native.blob).header["macs"]
        assert all((m > 0) == (k in ("CONV_2D", "FULLY_CONNECTED")) for k, m in zip(native.ops, native.op_macs))
        per_op = np.arange(1, 2 * len(native.ops) + 1, dtype=np.uint64).reshape(2, -1) * 100
        table = op_instructions(native, per_op)
        assert [r["op"] for r in table] == native.ops and [r["index"] for r in table] == list(range(len(native.ops)))
        for r, col in zip(table, per_op.T):
            assert r["instructions"] == round(float(col.mean()))
            assert r["instructions_per_mac"] == (float(col.mean()) / r["macs"] if r["macs"] else None)
