"""Generated firmware sources (flatbuffer array, config header) and the TFLM budget.

Small int8 models are converted here with TensorFlow; the generated C is compiled with `cc`
and its constants are read back from a running program, so nothing is compared as text only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from export.budget import TFLM_BUILTINS, BudgetError, budget, op_names, tflm_arena_bytes, weight_bytes
from export.c_arrays import GENERATED_MARK, config_header, flatbuffer_array, write_firmware_sources
from pipeline.signal.beats import (
    BEAT_LOG,
    BUFFER as BEAT_BUFFER,
    DEFAULT_BEATS,
    HR_UNKNOWN,
    HR_X10_MAX,
    RR_IRREGULARITY_MAX,
    RR_IRREGULARITY_UNKNOWN,
    TH_SHIFT as BEAT_TH_SHIFT,
)
from pipeline.signal.device_rule import DEFAULT_RULE, WindowStatus
from pipeline.data.labels import LABELS, STAGE1_LABELS
from pipeline.signal.quality import CONFIDENCE_BITS, DEFAULT_QUALITY, QualityStatus, confidence_decay_q
from pipeline.signal.spec import DEFAULT_SPEC, PreprocessSpec

CC = shutil.which("cc")
CXX = shutil.which("c++")
C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
WINDOW = DEFAULT_SPEC.window

pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler (cc)")


# ---------------------------------------------------------------- models built here


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


@pytest.fixture(scope="module")
def tiny() -> dict:
    """Conv1D -> ReLU -> GlobalAveragePooling1D -> Dense(3), full-integer int8 with int8 I/O."""
    tf = _tf()
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((WINDOW, 1), batch_size=1)
    x = tf.keras.layers.Conv1D(8, 7, strides=2)(inp)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.GlobalAveragePooling1D()(x)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(3)(x))
    rng = np.random.default_rng(0)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.standard_normal((1, WINDOW, 1)).astype(np.float32)] for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    params = 7 * 1 * 8 + 8 * 4 + 8 * 3 + 3 * 4  # int8 kernels, int32 biases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Statistics for quantized inputs were expected"
        return {"tflite": conv.convert(), "param_bytes": params}


@pytest.fixture(scope="module")
def refused() -> bytes:
    """erf(cumsum(x)): a builtin outside TFLM_BUILTINS (CUMSUM) and a Flex op (FlexErf)."""
    tf = _tf()

    @tf.function(input_signature=[tf.TensorSpec((1, 8), tf.float32)])
    def fn(x):
        return tf.math.erf(tf.math.cumsum(x, axis=1))

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return conv.convert()


def _quant(tflite: bytes) -> tuple[tuple[float, int], tuple[float, int]]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite, arena_size=256 * 1024)
    q = [d["quantization_parameters"] for d in (interp.get_input_details(0), interp.get_output_details(0))]
    return tuple((float(p["scales"][0]), int(p["zero_points"][0])) for p in q)  # type: ignore[return-value]


# ---------------------------------------------------------------- helpers


def _run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _compile_run(cwd: Path, sources: list[str], *args: str) -> str:
    _run([CC, *C_FLAGS, "-o", "prog", *sources], cwd)
    return _run([str(cwd / "prog"), *args], cwd)


def _parse_array(source: str, name: str = "g_model") -> tuple[bytes, list[str], int]:
    """(bytes, data lines, declared length) read back from a generated source."""
    body = re.search(rf"{name}\[\] = \{{\n(.*?)\n\}};", source, re.S)
    assert body, "array definition not found"
    lines = body.group(1).split("\n")
    data = bytes(int(tok, 16) for tok in re.findall(r"0x([0-9a-f]{2})", body.group(1)))
    length = int(re.search(rf"{name}_len = (\d+)u;", source).group(1))
    return data, lines, length


def _check_layout(lines: list[str], n: int) -> None:
    counts = [len(re.findall(r"0x", ln)) for ln in lines]
    assert sum(counts) == n and len(lines) == -(-n // 12)
    assert all(c == 12 for c in counts[:-1]) and 1 <= counts[-1] <= 12
    assert all(ln.endswith(",") for ln in lines[:-1]) and not lines[-1].endswith(",")


DUMP_MAIN = r"""
#include <stdint.h>
#include <stdio.h>
#include "ecg_model_data.h"

int main(int argc, char **argv) {
    FILE *f;
    if (argc != 2) return 2;
    if (((uintptr_t)g_model % 16) != 0) return 3;
    f = fopen(argv[1], "wb");
    if (f == NULL) return 4;
    if (fwrite(g_model, 1, g_model_len, f) != g_model_len) return 5;
    return fclose(f) == 0 ? 0 : 6;
}
"""

# The declared alignment, seen by the compiler: a negative array size fails the build.
ALIGN_CHECK = """
#include "ecg_model_data.c"
typedef char g_model_is_16_byte_aligned[(__alignof__(g_model) >= 16) ? 1 : -1];
"""


def _dump_roundtrip(tmp: Path, tflite: bytes) -> bytes:
    header, source = flatbuffer_array(tflite)
    (tmp / "ecg_model_data.h").write_text(header)
    (tmp / "ecg_model_data.c").write_text(source)
    (tmp / "main.c").write_text(DUMP_MAIN)
    _compile_run(tmp, ["main.c", "ecg_model_data.c"], "dump.bin")
    return (tmp / "dump.bin").read_bytes()


# ---------------------------------------------------------------- flatbuffer array


def test_array_round_trips_through_c(tiny: dict, tmp_path: Path) -> None:
    tflite = tiny["tflite"]
    header, source = flatbuffer_array(tflite)
    data, lines, length = _parse_array(source)
    assert data == tflite and length == len(tflite)
    _check_layout(lines, len(tflite))
    assert "extern const unsigned char g_model[];" in header and "extern const unsigned int g_model_len;" in header
    assert "__attribute__((aligned(16)))" in source and "ECG_ALIGNED const unsigned char g_model[] = {" in source
    assert _dump_roundtrip(tmp_path, tflite) == tflite
    (tmp_path / "align.c").write_text(ALIGN_CHECK)
    _run([CC, *C_FLAGS, "-c", "align.c"], tmp_path)


@pytest.mark.parametrize("n", [1, 3, 5, 11, 12, 13, 24, 25])
def test_array_line_wrapping_edges(tiny: dict, n: int, tmp_path: Path) -> None:
    prefix = tiny["tflite"][:n]
    data, lines, length = _parse_array(flatbuffer_array(prefix)[1])
    assert data == prefix and length == n
    _check_layout(lines, n)
    if n in (3, 5):
        assert _dump_roundtrip(tmp_path, prefix) == prefix


def test_array_refuses_empty_and_bad_names() -> None:
    with pytest.raises(ValueError):
        flatbuffer_array(b"")
    with pytest.raises(ValueError):
        flatbuffer_array(b"\x00", name="g model")


@pytest.mark.skipif(CXX is None, reason="needs a C++ compiler")
def test_sources_compile_as_cpp(tiny: dict, tmp_path: Path) -> None:
    """Arduino sketches include the headers from C++."""
    paths = write_firmware_sources(tmp_path, tiny["tflite"], DEFAULT_SPEC, LABELS, *_quant(tiny["tflite"]))
    (tmp_path / "use.cpp").write_text(
        '#include "ecg_model_data.h"\n#include "ecg_config.h"\n'
        "static const char *const labels[ECG_NUM_LABELS] = ECG_LABELS;\n"
        "static const float sos[ECG_FILTER_SECTIONS][6] = ECG_FILTER_SOS;\n"
        "int main() { return (int)(g_model_len == 0) + (labels[0][0] == 0) + (sos[0][0] == 0.0f); }\n"
    )
    flags = ["-std=c++11", "-Wall", "-Wextra", "-Werror"]
    _run([CXX, *flags, "-x", "c++", "-c", str(paths["ecg_model_data.c"]), "-o", "model.o"], tmp_path)
    _run([CXX, *flags, "use.cpp", "model.o", "-o", "use"], tmp_path)
    _run([str(tmp_path / "use")], tmp_path)


# ---------------------------------------------------------------- generated files and config header


def test_write_firmware_sources(tiny: dict, tmp_path: Path) -> None:
    out = tmp_path / "firmware"
    in_q, out_q = _quant(tiny["tflite"])
    paths = write_firmware_sources(out, tiny["tflite"], DEFAULT_SPEC, LABELS, in_q, out_q)
    assert set(paths) == {"ecg_model_data.h", "ecg_model_data.c", "ecg_config.h"}
    assert sorted(os.listdir(out)) == sorted(paths), "temporary files left behind"
    first = {name: p.read_text() for name, p in paths.items()}
    for text in first.values():
        line = text.splitlines()[0]
        assert line.startswith("/*") and line.endswith("*/") and GENERATED_MARK in line and "do not edit" in line
    again = write_firmware_sources(out, tiny["tflite"], DEFAULT_SPEC, LABELS, in_q, out_q)
    assert {n: p.read_text() for n, p in again.items()} == first
    assert f'"{hashlib.sha256(tiny["tflite"]).hexdigest()}"' in first["ecg_config.h"]
    _run([CC, *C_FLAGS, "-c", "ecg_model_data.c"], out)


def _config_program(labels: tuple[str, ...]) -> str:
    """A C99 program printing every constant of ecg_config.h (doubles as %a, exact)."""
    index = "".join(f'    printf("label_index {s} %d\\n", ECG_LABEL_{s});\n' for s in labels)
    return r"""
#include <stdio.h>
#include "ecg_config.h"
#include "ecg_config.h" /* the include guard holds */

static const char *const labels[ECG_NUM_LABELS] = ECG_LABELS;
static const double sos[ECG_FILTER_SECTIONS][6] = ECG_FILTER_SOS;
static const double zi[ECG_FILTER_SECTIONS][2] = ECG_FILTER_ZI;

int main(void) {
    int i, j;
    printf("num_labels %d %d\n", ECG_NUM_LABELS, (int)(sizeof labels / sizeof labels[0]));
    for (i = 0; i < ECG_NUM_LABELS; i++) printf("label %s\n", labels[i]);
""" + index + r"""
    printf("fs %d\nwindow %d\ndevice_hop %d\ndataset_hop %d\nin_leads %d\n", ECG_SAMPLE_RATE_HZ,
           ECG_WINDOW_SAMPLES, ECG_DEVICE_HOP_SAMPLES, ECG_DATASET_HOP_SAMPLES, ECG_IN_LEADS);
    printf("eps %a %d\n", (double)ECG_ZSCORE_EPS, (int)sizeof(ECG_ZSCORE_EPS));
    printf("sections %d\nsteady %d\n", ECG_FILTER_SECTIONS, ECG_FILTER_INIT_STEADY);
    for (i = 0; i < ECG_FILTER_SECTIONS; i++)
        for (j = 0; j < 6; j++) printf("sos %d %d %a\n", i, j, sos[i][j]);
    for (i = 0; i < ECG_FILTER_SECTIONS; i++)
        for (j = 0; j < 2; j++) printf("zi %d %d %a\n", i, j, zi[i][j]);
    printf("band %d %a %a\nnotch %a\n", ECG_BAND_ORDER, ECG_BAND_LOW_HZ, ECG_BAND_HIGH_HZ, ECG_NOTCH_HZ);
    printf("input %a %d %d\n", (double)ECG_INPUT_SCALE, ECG_INPUT_ZERO_POINT, (int)sizeof(ECG_INPUT_SCALE));
    printf("output %a %d %d\n", (double)ECG_OUTPUT_SCALE, ECG_OUTPUT_ZERO_POINT, (int)sizeof(ECG_OUTPUT_SCALE));
    printf("sha256 %s\nfingerprint %s\n", ECG_MODEL_SHA256, ECG_SPEC_FINGERPRINT);
    printf("status %d %d %d\n", ECG_STATUS_OK, ECG_STATUS_LEAD_OFF, ECG_STATUS_SATURATED);
    printf("quality %d %d\n", ECG_SATURATION_MAX_SAMPLES, ECG_RAIL_MARGIN_PER_1024);
    printf("uncertain %d %d %d %d\n", ECG_STATUS_FLAT, ECG_STATUS_NOISY, ECG_STATUS_LOW_CONFIDENCE, ECG_QUALITY_CHECKS);
    printf("quality_mv %a %a\n", (double)ECG_QUALITY_FULL_SCALE_MV, (double)ECG_QUALITY_FLAT_MIN_P2P_MV);
    printf("quality_samples %d %d\n", ECG_QUALITY_FLAT_MAX_RUN_SAMPLES, ECG_QUALITY_JUMP_SEGMENT_SAMPLES);
    printf("quality_ratio %a %a\n", (double)ECG_QUALITY_NOISE_MAX_HF_RATIO, (double)ECG_QUALITY_NOISE_MAX_JUMP_RATIO);
    printf("confidence %a %d\n", (double)ECG_CONFIDENCE_THRESHOLD, ECG_CONFIDENCE_THRESHOLD_Q);
    printf("quality_f64 %a %a %a\n", ECG_QUALITY_FULL_SCALE_MV_F64, ECG_QUALITY_FLAT_MIN_P2P_MV_F64, ECG_QUALITY_NOISE_MAX_JUMP_RATIO_F64);
    printf("hf_ratio2 %u %u\n", ECG_QUALITY_HF_RATIO2_NUM, ECG_QUALITY_HF_RATIO2_DEN);
    printf("confidence_q %d %lu\n", ECG_CONFIDENCE_BITS, (unsigned long)ECG_CONFIDENCE_DECAY);
    printf("beat_filters %d %d %d %d %d\n", ECG_BEAT_FS, ECG_BEAT_LP_LEN, ECG_BEAT_HP_LEN, ECG_BEAT_MWI_LEN, ECG_BEAT_E_SHIFT);
    printf("beat_times %d %d %d %d %d\n", ECG_BEAT_REACH, ECG_BEAT_REFRACTORY, ECG_BEAT_T_WAVE, ECG_BEAT_LEARN, ECG_BEAT_DEFAULT_RR);
    printf("beat_fractions %d %d %d %d %d\n", ECG_BEAT_TH_NUM, ECG_BEAT_TH_SHIFT, ECG_BEAT_SB_NUM, ECG_BEAT_SB_DEN, ECG_BEAT_BUFFER);
    printf("beat_sizes %d %d %d %d\n", ECG_BEAT_DELAY, ECG_BEAT_HISTORY, ECG_BEAT_LEARN_CANDIDATES, ECG_BEAT_LOG);
    printf("beat_rhythm %u %u %u %u\n", ECG_BEAT_HR_UNKNOWN, ECG_BEAT_HR_X10_MAX, ECG_BEAT_RR_IRREGULARITY_UNKNOWN, ECG_BEAT_RR_IRREGULARITY_MAX);
    return 0;
}
"""


def _expected(spec: PreprocessSpec, labels: tuple[str, ...], in_q, out_q, sha: str, leads: int) -> list[str]:
    f32 = lambda v: float(np.float32(v)).hex()  # noqa: E731
    sos = spec.sos()
    out = [f"num_labels {len(labels)} {len(labels)}", *(f"label {s}" for s in labels)]
    out += [f"label_index {s} {i}" for i, s in enumerate(labels)]
    out += [f"fs {spec.fs}", f"window {spec.window}", f"device_hop {spec.device_hop}"]
    out += [f"dataset_hop {spec.dataset_hop}", f"in_leads {leads}", f"eps {f32(spec.zscore_eps)} 4"]
    out += [f"sections {len(sos)}", f"steady {int(spec.filter_init == 'steady')}"]
    out += [f"sos {i} {j} {float(v).hex()}" for (i, j), v in np.ndenumerate(sos)]
    out += [f"zi {i} {j} {float(v).hex()}" for (i, j), v in np.ndenumerate(sps.sosfilt_zi(sos))]
    out += [f"band {spec.band_order} {float(spec.band_hz[0]).hex()} {float(spec.band_hz[1]).hex()}"]
    out += [f"notch {float(spec.notch_hz or 0.0).hex()}"]
    out += [f"input {f32(in_q[0])} {in_q[1]} 4", f"output {f32(out_q[0])} {out_q[1]} 4"]
    out += [f"sha256 {sha}", f"fingerprint {spec.fingerprint()}"]
    out += [f"status {int(WindowStatus.OK)} {int(WindowStatus.LEAD_OFF)} {int(WindowStatus.SATURATED)}"]
    out += [f"quality {DEFAULT_RULE.saturation_max_samples(spec.window)} {DEFAULT_RULE.rail_margin_per_1024}"]
    q = DEFAULT_QUALITY  # config_header without an Uncertainty: no quality rule (checks 0, default values), threshold 0
    out += [f"uncertain {int(QualityStatus.FLAT)} {int(QualityStatus.NOISY)} {int(QualityStatus.LOW_CONFIDENCE)} 0"]
    out += [f"quality_mv {f32(q.full_scale_mv)} {f32(q.flat_min_p2p_mv)}"]
    out += [f"quality_samples {q.flat_max_run_samples(spec.fs)} {q.jump_segment_samples(spec.fs)}"]
    out += [f"quality_ratio {f32(q.noise_max_hf_ratio)} {f32(q.noise_max_jump_ratio)}"]
    out += [f"confidence {f32(0.0)} -128"]
    out += [f"quality_f64 {q.full_scale_mv.hex()} {q.flat_min_p2p_mv.hex()} {q.noise_max_jump_ratio.hex()}"]
    r2 = q.hf_ratio2()
    out += [f"hf_ratio2 {r2.numerator} {r2.denominator}"]
    out += [f"confidence_q {CONFIDENCE_BITS} {confidence_decay_q(out_q[0])}"]
    c = DEFAULT_BEATS
    out += [f"beat_filters {c.fs} {c.lp_len} {c.hp_len} {c.mwi_len} {c.e_shift}", f"beat_times {c.reach} {c.refractory} {c.t_wave} {c.learn} {c.default_rr}"]
    out += [f"beat_fractions {c.th_num} {BEAT_TH_SHIFT} {c.sb_num} {c.sb_den} {BEAT_BUFFER}", f"beat_sizes {c.delay} {c.history} {c.learn_candidates} {BEAT_LOG}",
            f"beat_rhythm {HR_UNKNOWN} {HR_X10_MAX} {RR_IRREGULARITY_UNKNOWN} {RR_IRREGULARITY_MAX}"]  # fmt: skip
    return out


def _normalise_hex(line: str) -> str:
    """glibc prints %a as 0x1.8p+1; Python's float.hex as 0x1.8000000000000p+1: compare values."""
    return " ".join(float.fromhex(t).hex() if t.startswith(("0x", "-0x")) else t for t in line.split())


SPECS = [
    (DEFAULT_SPEC, LABELS, 1),
    (DEFAULT_SPEC.with_(notch_hz=60.0, filter_init="zero", device_hop=500, band_hz=(0.67, 35.0)), STAGE1_LABELS, 2),
]


@pytest.mark.parametrize("spec,labels,leads", SPECS, ids=["default", "notch-zero-init"])
def test_config_header_constants_equal_spec(tiny: dict, tmp_path: Path, spec, labels, leads) -> None:
    in_q, out_q = _quant(tiny["tflite"])
    sha = hashlib.sha256(tiny["tflite"]).hexdigest()
    header = config_header(spec, labels, in_q, out_q, sha, in_leads=leads)
    (tmp_path / "ecg_config.h").write_text(header)
    program = _config_program(labels)
    (tmp_path / "main.c").write_text(program)
    macros = set(re.findall(r"^#define (ECG_\w+)", header, re.M)) - {"ECG_CONFIG_H"}
    unused = sorted(m for m in macros if not re.search(rf"\b{m}\b", program))
    assert not unused, f"the test program does not check {unused}"
    printed = [_normalise_hex(ln) for ln in _compile_run(tmp_path, ["main.c"]).splitlines()]
    assert printed == [_normalise_hex(ln) for ln in _expected(spec, labels, in_q, out_q, sha, leads)]
    assert len(spec.sos()) == (5 if spec.notch_hz else 4)


def test_config_header_refuses_what_the_device_cannot_do() -> None:
    sha = "0" * 64
    with pytest.raises(ValueError, match="causal"):
        config_header(DEFAULT_SPEC.with_(filter="zero-phase"), LABELS, (0.1, 0), (0.1, 0), sha)
    with pytest.raises(ValueError):
        config_header(DEFAULT_SPEC, LABELS, (0.1, 0), (0.1, 0), "not-a-hash")
    with pytest.raises(ValueError):
        config_header(DEFAULT_SPEC, ('say "hi"\n',), (0.1, 0), (0.1, 0), sha)
    with pytest.raises(ValueError):
        config_header(DEFAULT_SPEC, LABELS, (0.1, 300), (0.1, 0), sha)


# ---------------------------------------------------------------- budget

PROBE = """
import sys
from tflite_micro.python.tflite_micro import runtime
try:
    runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=int(sys.argv[2]))
    print("ok")
except RuntimeError:
    print("fail")
"""


def _allocates_in_child(model: Path, arena: int) -> bool:
    """TFLM's failure path may crash, so a too-small arena is tried in a child process."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(model), str(arena)], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == "ok"


def test_budget_of_a_small_model(tiny: dict, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from tflite_micro.python.tflite_micro import runtime

    tflite = tiny["tflite"]
    cost = budget(tflite, macs=12345)
    assert set(cost) == {"flatbuffer_bytes", "weight_bytes", "arena_bytes", "macs", "ops", "op_counts"}
    assert cost["flatbuffer_bytes"] == len(tflite) and cost["macs"] == 12345
    names = op_names(tflite)
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(cost["ops"]) <= TFLM_BUILTINS
    assert cost["ops"] == sorted(set(names)) == sorted(cost["op_counts"])
    assert sum(cost["op_counts"].values()) == len(names) and cost["op_counts"]["CONV_2D"] == 1
    assert tiny["param_bytes"] <= cost["weight_bytes"] == weight_bytes(tflite) <= tiny["param_bytes"] + 64
    assert cost["weight_bytes"] < len(tflite)
    assert json.loads(json.dumps(cost)) == cost  # goes into the manifest
    assert budget(tflite)["macs"] is None

    arena = cost["arena_bytes"]
    assert arena > 0
    capfd.readouterr()
    interp = runtime.Interpreter.from_bytes(tflite, arena_size=arena)
    interp.set_input(np.zeros((1, WINDOW, 1), np.int8), 0)
    interp.invoke()
    assert interp.get_output(0).shape == (1, 3)
    interp.print_allocations()
    recorded = re.search(r"Arena allocation total (\d+) bytes", capfd.readouterr().err)
    assert recorded and int(recorded.group(1)) == arena, "bisection disagrees with the RecordingMicroAllocator"
    (tmp_path / "m.tflite").write_bytes(tflite)
    assert not _allocates_in_child(tmp_path / "m.tflite", arena - 1024)
    assert not _allocates_in_child(tmp_path / "m.tflite", arena - 1)


def test_budget_refuses_ops_tflm_lacks(refused: bytes) -> None:
    assert {"CUMSUM", "FlexErf"} <= set(op_names(refused))
    with pytest.raises(BudgetError) as err:
        budget(refused)
    msg = str(err.value)
    assert "op CUMSUM is not a TensorFlow Lite Micro builtin" in msg
    assert "op FlexErf is not a TensorFlow Lite Micro builtin" in msg
    with pytest.raises(BudgetError, match="cannot run"):
        tflm_arena_bytes(refused)  # the Flex op has no TFLM kernel at any arena size


def test_budget_refuses_non_flatbuffers() -> None:
    with pytest.raises(BudgetError, match="not a TFLite flatbuffer"):
        op_names(b"definitely not a model")
