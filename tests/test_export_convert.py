"""ONNX export and onnx2tf conversion of a small trained student, checked on real PTB-XL windows."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from export.onnx_export import ExportError, export_onnx, onnx_vs_torch, torch_logits
from export.tflite_convert import (
    QuantParams,
    _check_io,
    calibration_windows,
    conv_weight_quantization,
    convert,
    tflite_float_vs_onnx,
    tflite_ops,
)
from pipeline.models.checkpoint import load_checkpoint
from pipeline.cli import main
from pipeline.data.dataset import load_dataset
from pipeline.inference.classifiers import select_leads
from pipeline.signal.preprocess import quantize_input
from test_train import write_synthetic_set

TFLM_OPS = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED",
    "RESHAPE", "PAD", "QUANTIZE", "DEQUANTIZE", "SOFTMAX", "SQUEEZE", "EXPAND_DIMS",
}  # fmt: skip
# 8 epochs, not 3: the best 3-epoch checkpoint still gives near-constant logits, which makes top-1 agreement trivial
TRAIN = ["--model", "mcu", "--epochs", "8", "--batch-size", "16", "--lr", "3e-3", "--patience", "0", "--no-progress", "--lead", "II"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return load_dataset(write_synthetic_set(tmp_path_factory.mktemp("syn") / "three"))


@pytest.fixture(scope="module")
def ckpt(synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", str(synthetic.path), "--out-dir", str(out), *TRAIN]) == 0
    return load_checkpoint(out / "checkpoint.pt")


@pytest.fixture(scope="module")
def real_windows(shared_data, tmp_path_factory, ckpt):
    """Lead II windows of 300 PTB-XL records, as the checkpoint takes them."""
    out = tmp_path_factory.mktemp("ptbxl") / "set"
    assert main(["prepare", "ptbxl", "--ptbxl-dir", str(shared_data / "ptbxl"), "--max-records", "300", "--out", str(out), "--no-progress"]) == 0
    ds = load_dataset(out)
    return np.array(select_leads(np.asarray(ds.X), ds.leads, ckpt.leads), dtype=np.float32)


@pytest.fixture(scope="module")
def onnx_file(ckpt, tmp_path_factory):
    return export_onnx(ckpt, tmp_path_factory.mktemp("onnx") / "model.onnx")


@pytest.fixture(scope="module")
def converted(onnx_file, ckpt, synthetic, tmp_path_factory):
    """Both TFLite models, converted from an empty working directory that must stay empty."""
    cwd = tmp_path_factory.mktemp("cwd")
    before = _sha(onnx_file)
    calib = calibration_windows(synthetic, n=120, leads=ckpt.leads)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        models = convert(onnx_file, calib, tmp_path_factory.mktemp("tflite"))
        assert os.getcwd() == str(cwd)
    return SimpleNamespace(models=models, cwd=cwd, onnx_unchanged=_sha(onnx_file) == before)


# --------------------------------------------------------------------------- ONNX


def test_onnx_contract(onnx_file):
    import onnx

    model = onnx.load(str(onnx_file))
    onnx.checker.check_model(model, full_check=True)
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert [(i.name, dims(i)) for i in model.graph.input] == [("x", [1, 1, 2500])]
    assert [(o.name, dims(o)) for o in model.graph.output] == [("logits", [1, 3])]
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    assert [p.name for p in onnx_file.parent.iterdir()] == ["model.onnx"]  # no temp files or external data left


def test_onnxruntime_matches_torch_on_real_windows(ckpt, onnx_file, real_windows):
    assert len(real_windows) >= 100
    assert onnx_vs_torch(ckpt, onnx_file, real_windows) <= 1e-4


def test_onnx_errors_name_the_step(ckpt, onnx_file, tmp_path):
    with pytest.raises(ExportError, match="onnxruntime parity: windows of shape"):
        onnx_vs_torch(ckpt, onnx_file, np.zeros((2, 1, 1000), np.float32))
    class Untraceable(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no graph here")

    with pytest.raises(ExportError, match="onnx export: torch.onnx.export .* failed .*no graph here"):
        export_onnx(SimpleNamespace(**{**vars(ckpt), "model": Untraceable()}, in_leads=1), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- calibration


def test_calibration_windows_are_stratified_and_seeded(synthetic):
    calib = calibration_windows(synthetic, n=30, seed=3, leads=["II"])
    assert calib.shape == (30, 1, 2500) and calib.dtype == np.float32
    train = synthetic.indices("train")
    lead = synthetic.leads.index("II")
    rows = {np.asarray(synthetic.X[i, lead]).tobytes(): int(synthetic.y[i]) for i in train}
    assert np.bincount([rows[w[0].tobytes()] for w in calib], minlength=3).tolist() == [10, 10, 10]  # train windows only
    assert np.array_equal(calib, calibration_windows(synthetic, n=30, seed=3, leads=["II"]))
    assert not np.array_equal(calib, calibration_windows(synthetic, n=30, seed=4, leads=["II"]))


def test_one_class_calibration_set_is_refused(synthetic):
    one_class = SimpleNamespace(X=synthetic.X, y=synthetic.y, label_names=synthetic.label_names, leads=synthetic.leads,
                                split=np.where(synthetic.y == 0, "train", "val"))  # fmt: skip
    with pytest.raises(ExportError, match=r"int8 calibration: a calibration set of one class \(\['NORMAL'\]\)"):
        calibration_windows(one_class)


# --------------------------------------------------------------------------- TFLite


@pytest.mark.slow
def test_conversion_leaves_no_files_behind(converted, onnx_file):
    assert not list(converted.cwd.iterdir())
    assert converted.onnx_unchanged  # onnx2tf rewrites its input in place; convert must give it a copy
    assert sorted(p.name for p in converted.models.int8_path.parent.iterdir()) == ["model_float.tflite", "model_int8.tflite"]


@pytest.mark.slow
def test_float_tflite_matches_onnx(converted, onnx_file, real_windows):
    assert tflite_float_vs_onnx(converted.models.float_path, onnx_file, real_windows[:64]) <= 1e-4


@pytest.mark.slow
def test_int8_model_contract(converted):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(converted.models.int8_path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert (inp["dtype"], tuple(inp["shape"])) == (np.int8, (1, 2500, 1))
    assert (out["dtype"], tuple(out["shape"])) == (np.int8, (1, 3))
    assert converted.models.input_q == QuantParams(*inp["quantization"]) and converted.models.output_q == QuantParams(*out["quantization"])
    ops = tflite_ops(converted.models.int8_path)
    assert set(ops) <= TFLM_OPS, ops
    assert {"CONV_2D", "MEAN"} <= set(ops) and "FULLY_CONNECTED" not in set(ops)  # 1x1-conv head


@pytest.mark.slow
def test_int8_conv_weights_are_per_channel(converted):
    convs = conv_weight_quantization(converted.models.int8_path)
    assert len(convs) >= 10
    for c in convs:
        assert c.scales == c.channels > 1 and c.quantized_dimension == (0 if c.op == "CONV_2D" else 3), c


@pytest.mark.slow
def test_int8_top1_agrees_with_torch_on_real_windows(converted, ckpt, real_windows):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(converted.models.int8_path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_q, out_q = converted.models.input_q, converted.models.output_q
    logits = []
    for w in real_windows:
        interp.set_tensor(inp["index"], quantize_input(w.T[None], in_q.scale, in_q.zero_point))
        interp.invoke()
        logits.append((interp.get_tensor(out["index"])[0].astype(np.float64) - out_q.zero_point) * out_q.scale)
    expected = torch_logits(ckpt, real_windows)
    agree = float(np.mean(np.argmax(logits, 1) == expected.argmax(1)))
    assert len(set(expected.argmax(1))) > 1  # a model that always says one class would make this trivial
    assert agree >= 0.9, agree


@pytest.mark.slow
def test_tflite_check_names_what_changed(converted):
    with pytest.raises(ExportError, match=r"tflite check: .*input is float32 \(1, 2500, 1\), expected int8 \(1, 2500, 1\); output is float32"):
        _check_io(converted.models.float_path, "int8 TFLite", np.int8, (1, 2500, 1), (1, 3))


def test_corrupt_onnx_is_an_onnx2tf_error(tmp_path, synthetic):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not really a protobuf" * 10)
    with pytest.raises(ExportError, match=r"onnx2tf: cannot read the ONNX model .*bad.onnx"):
        convert(bad, calibration_windows(synthetic, n=6, leads=["II"]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_calibration_array_is_refused(onnx_file, tmp_path):
    with pytest.raises(ExportError, match=r"int8 calibration: calibration windows of shape \(4, 2500, 1\)"):
        convert(onnx_file, np.zeros((4, 2500, 1), np.float32), tmp_path)
    with pytest.raises(ExportError, match="int8 calibration: calibration windows are constant"):
        convert(onnx_file, np.zeros((4, 1, 2500), np.float32), tmp_path)


@pytest.mark.slow
def test_onnx2tf_exit_becomes_export_error(onnx_file, synthetic, tmp_path, monkeypatch, converted):
    """onnx2tf logs an error and calls sys.exit; convert turns that into ExportError and restores the process state."""
    import onnx2tf

    def failing(**_kw):
        print("\x1b[31mERROR:\x1b[0m unsupported thing in the graph")
        sys.exit(1)

    monkeypatch.setattr(onnx2tf, "convert", failing)
    cwd, path_var = os.getcwd(), os.environ["PATH"]
    with pytest.raises(ExportError, match=r"onnx2tf: conversion of model.onnx failed \(SystemExit: 1\); log: ERROR: unsupported thing"):
        convert(onnx_file, calibration_windows(synthetic, n=6, leads=["II"]), tmp_path / "out")
    assert os.getcwd() == cwd and os.environ["PATH"] == path_var and not (tmp_path / "out").exists()
