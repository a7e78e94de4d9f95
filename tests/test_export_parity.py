"""Parity report arithmetic, tolerances, and the int8 runtimes on a small real int8 model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from export.parity import Tolerances, compare, failures, write_parity
from export.runtimes import RuntimeResult, run_litert, run_tflm
from pipeline.data.labels import LABELS


def test_compare_hand_example(tmp_path):
    torch_logits = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    y = np.array([0, 1, 2, 2])
    int8 = torch_logits.copy()
    int8[3] = [0.0, 0.0, 1.5]  # flips window 3 to ARRHYTHMIA (its true label)
    raw = np.array([[10, 0, 0], [0, 9, 0], [0, 0, 4], [0, 0, 6]], np.int8)
    results = [
        RuntimeResult("torch", torch_logits),
        RuntimeResult("litert_int8_reference", int8, raw),
        RuntimeResult("tflm", int8, raw.copy()),
    ]
    report = compare(results, y, LABELS)
    r = report["runtimes"]["litert_int8_reference"]
    assert r["top1_agreement"] == 0.75 and r["max_abs_logit_diff"] == 1.5
    assert report["runtimes"]["torch"]["per_class_recall"] == {"NORMAL": 1.0, "MI": 1.0, "ARRHYTHMIA": 0.5}
    assert report["int8_recall_delta"] == {"NORMAL": 0.0, "MI": 0.0, "ARRHYTHMIA": 0.5}
    assert report["tflm_identical_fraction"] == 1.0
    assert failures(report) == [
        "litert_int8_reference: top-1 agreement with torch 0.7500 < 0.99",
        "tflm: top-1 agreement with torch 0.7500 < 0.99",
    ]
    assert failures(report, Tolerances(min_int8_top1=0.7)) == []
    results[2].raw_int8[1, 1] = 8
    assert compare(results, y, LABELS)["tflm_identical_fraction"] == 0.75
    # the flipped window 3 is one the float model would not answer at a threshold of 0.7 (top probability 0.58)
    sure = compare(results, y, LABELS, threshold=0.7)
    assert sure["answered_windows"] == 2 and sure["runtimes"]["tflm"]["top1_agreement_answered"] == 1.0
    assert compare(results, y, LABELS, threshold=0.5)["runtimes"]["tflm"]["top1_agreement_answered"] == 0.75
    js, png = write_parity(report, tmp_path)
    assert json.loads(js.read_text())["runtimes"].keys() == report["runtimes"].keys() and png.stat().st_size > 1000


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory):
    """A small full-integer int8 model made with TensorFlow's own converter."""
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((2500, 1), batch_size=1)
    x = tf.keras.layers.Conv1D(8, 7, strides=4, activation="relu")(inp)
    x = tf.keras.layers.Conv1D(8, 5, strides=2, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling1D(keepdims=True)(x)
    # a 1x1-conv head, as the MCU student has: LiteRT's reference FULLY_CONNECTED requantizes in
    # float and may part from TFLM by one LSB, CONV_2D does not
    x = tf.keras.layers.Reshape((3,))(tf.keras.layers.Conv1D(3, 1)(x))
    model = tf.keras.Model(inp, x)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.standard_normal((1, 2500, 1)).astype(np.float32)] for _ in range(30))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("tfl") / "tiny_int8.tflite"
    path.write_bytes(conv.convert())
    return path


def test_tflm_bit_identical_to_litert_reference(tiny_int8):
    windows = np.random.default_rng(1).standard_normal((40, 1, 2500)).astype(np.float32)
    ref = run_litert(tiny_int8, windows, reference_kernels=True)
    tflm = run_tflm(tiny_int8, windows)
    assert ref.raw_int8.shape == tflm.raw_int8.shape == (40, 3) and ref.raw_int8.dtype == np.int8
    assert np.array_equal(ref.raw_int8, tflm.raw_int8)
    assert len(np.unique(ref.raw_int8.argmax(1))) > 1 or len(np.unique(ref.raw_int8)) > 3  # outputs really vary
