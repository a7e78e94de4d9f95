"""The whole export chain on a small trained model and real PTB-XL windows from ../shared/data."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from export.cli import main as export_main
from pipeline.cli import main as pipeline_main
from pipeline.data.dataset import DatasetWriter, load_dataset
from pipeline.signal.spec import PreprocessSpec

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def chain(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    data = root / "ptbxl"
    assert pipeline_main(["prepare", "ptbxl", "--ptbxl-dir", str(shared_data / "ptbxl"), "--max-records", "400",
                          "--out", str(data), "--no-progress"]) == 0
    assert pipeline_main(["train", "--data", str(data), "--out-dir", str(root / "run"), "--model", "mcu", "--epochs", "3",
                          "--patience", "0", "--balanced-sampler", "--no-progress"]) == 0
    bundle = root / "bundle"
    code = export_main(["bundle", "--checkpoint", str(root / "run" / "checkpoint.pt"), "--data", str(data), "--out", str(bundle),
                        "--calib-size", "60", "--parity-limit", "48", "--min-int8-top1", "0.9"])
    return root, data, bundle, code


def test_bundle_layout_and_manifest(chain):
    root, data, bundle, code = chain
    assert code == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    for name in ("model.onnx", "model_float.tflite", "model_int8.tflite", "parity.json", "parity.png"):
        assert name in manifest["files"], name
    assert manifest["quantization"]["input"]["shape"] == [1, 2500, 1] and manifest["quantization"]["input"]["dtype"] == "int8"
    assert manifest["checks"]["onnx_vs_torch_max_abs"] <= 1e-4 and manifest["checks"]["float_tflite_vs_onnx_max_abs"] <= 1e-4
    assert manifest["spec"] == PreprocessSpec().to_dict() and manifest["labels"] == ["NORMAL", "MI", "ARRHYTHMIA"]
    b = manifest["budget"]
    assert b["flatbuffer_bytes"] == (bundle / "model_int8.tflite").stat().st_size and b["arena_bytes"] > 0 and b["macs"] > 1e6
    assert not [p for p in bundle.parent.iterdir() if ".tmp-" in p.name]


def test_parity_tflm_bit_identical(chain):
    _, data, bundle, _ = chain
    report = json.loads((bundle / "parity.json").read_text())
    assert report["n_windows"] == min(48, len(load_dataset(data).indices("test")))
    # the student has no FULLY_CONNECTED (whose LiteRT reference kernel requantizes in float),
    # so TFLM must equal LiteRT's reference kernels on every window
    assert report["tflm_identical_fraction"] == 1.0 and report["tflm_max_output_lsb_diff"] == 0
    assert report["tflm_divergences"] == []
    assert set(report["runtimes"]) == {"torch", "onnxruntime", "litert_float_default", "litert_int8_reference", "litert_int8_default", "tflm"}
    assert report["runtimes"]["onnxruntime"]["max_abs_logit_diff"] <= 1e-4
    assert report["runtimes"]["litert_int8_reference"]["top1_agreement"] >= 0.9


def test_firmware_sources_compile_and_hold_the_model(chain, tmp_path):
    _, _, bundle, _ = chain
    fw = bundle / "firmware"
    cc = shutil.which("cc") or shutil.which("gcc")
    for c in fw.glob("*.c"):
        subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-c", str(c), "-o", str(tmp_path / (c.stem + ".o"))], check=True)
    prog = tmp_path / "dump.c"
    prog.write_text('#include <stdio.h>\n#include "ecg_model_data.h"\nint main(void){fwrite(g_model,1,g_model_len,stdout);return 0;}\n')
    exe = tmp_path / "dump"
    subprocess.run([cc, "-std=c99", "-I", str(fw), str(prog), *map(str, fw.glob("*.c")), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)], capture_output=True, check=True).stdout == (bundle / "model_int8.tflite").read_bytes()


def test_parity_and_budget_commands(chain, capsys):
    _, data, bundle, _ = chain
    assert export_main(["parity", "--bundle", str(bundle), "--data", str(data), "--limit", "16", "--min-int8-top1", "0.5"]) == 0
    assert json.loads((bundle / "parity.json").read_text())["n_windows"] == 16
    assert export_main(["budget", "--bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "arena_bytes" in out and "CONV_2D" in out
    assert export_main(["parity", "--bundle", str(bundle), "--data", str(data), "--limit", "16", "--min-int8-top1", "1.01"]) == 1


def test_corrupt_tflite_is_refused(chain, tmp_path, capsys):
    _, data, bundle, _ = chain
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    raw = (broken / "model_int8.tflite").read_bytes()
    (broken / "model_int8.tflite").write_bytes(raw[: len(raw) // 3])
    assert export_main(["parity", "--bundle", str(broken), "--data", str(data)]) == 2
    assert "model_int8.tflite does not match its sha256" in capsys.readouterr().err


def test_other_window_length_and_other_checkpoint(chain, tmp_path, capsys):
    root, data, bundle, _ = chain
    spec = PreprocessSpec(window=1250, dataset_hop=1250)
    with DatasetWriter(tmp_path / "short", spec) as w:
        w.add(np.zeros((4, 1, 1250), np.float32), np.array([0, 1, 2, 0]), "p", "r", np.arange(4) * 1250, "test")
        cols = w.columns()
        w.finish(cols, np.arange(4), {"label_names": ["NORMAL", "MI", "ARRHYTHMIA"], "leads": ["II"]})
    assert export_main(["bundle", "--checkpoint", str(root / "run" / "checkpoint.pt"), "--data", str(tmp_path / "short"), "--out", str(tmp_path / "b")]) == 2
    assert "windows of 1250 samples, the model takes 2500" in capsys.readouterr().err and not (tmp_path / "b").exists()
    other = tmp_path / "other_run"
    assert pipeline_main(["train", "--data", str(data), "--out-dir", str(other), "--model", "mcu_small", "--epochs", "1", "--no-progress"]) == 0
    moved = tmp_path / "moved"
    shutil.copytree(bundle, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["checkpoint"]["path"] = str(other / "checkpoint.pt")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert export_main(["parity", "--bundle", str(moved), "--data", str(data)]) == 2
    assert "changed since the bundle was made" in capsys.readouterr().err
