"""The quick start's main job, small: synthetic data -> train -> bundle -> parity."""

import json

import pytest

from export.cli import main as export_main

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_chain(tmp_path, capsys):
    out = tmp_path / "demo"
    code = export_main(["demo", "--out-dir", str(out), "--epochs", "4", "--patients-per-class", "6", "--no-progress"])
    printed = capsys.readouterr().out
    assert "not a medical device" in printed and "TFLM arena" in printed
    parity = json.loads((out / "bundle" / "parity.json").read_text())
    assert code == (0 if parity["runtimes"]["litert_int8_reference"]["top1_agreement"] >= 0.99 else 1)
    assert parity["tflm_identical_fraction"] == 1.0
    assert (out / "bundle" / "firmware" / "ecg_config.h").exists() and (out / "train" / "eval" / "metrics.json").exists()
