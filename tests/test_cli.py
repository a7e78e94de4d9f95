"""The console script: help, the demo main job and inspect."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from pipeline.cli import main
from pipeline.data.dataset import load_dataset


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("download", "prepare", "inspect", "demo"):
        assert cmd in out
    assert "not a medical device" in out
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "prepare", "--help"], capture_output=True, text=True, check=True).stdout
    for src in ("ptbxl", "mixed", "stage1", "stage2", "synthetic"):
        assert src in out


def test_demo_then_inspect(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out-dir", str(out), "--patients-per-class", "4", "--duration", "30", "--no-progress", "--jobs", "1"]) == 0
    ds = load_dataset(out / "dataset")
    assert ds.label_names == ("NORMAL", "MI", "ARRHYTHMIA")
    assert np.bincount(ds.y, minlength=3).tolist() == [12, 12, 12]  # 4 patients x 3 windows per class
    assert set(ds.split) <= {"train", "val", "test"} and "train" in set(ds.split)
    assert ds.meta["sources"]["synthetic"]["records"]
    printed = capsys.readouterr().out
    assert "not a medical device" in printed and "36 windows" in printed
    png = tmp_path / "ex.png"
    assert main(["inspect", str(out / "dataset"), "--plot", str(png), "--per-class", "2"]) == 0
    assert "windows / patients" in capsys.readouterr().out
    with Image.open(png) as im:
        assert im.size[0] > 400 and im.size[1] > 300
    # a second demo run reuses the generated records and gives the same data set
    sha = ds.meta["dataset_sha256"]
    assert main(["demo", "--out-dir", str(out), "--patients-per-class", "4", "--duration", "30", "--no-progress"]) == 0
    assert load_dataset(out / "dataset").meta["dataset_sha256"] == sha
    # other generator settings regenerate the records
    assert main(["demo", "--out-dir", str(out), "--patients-per-class", "3", "--duration", "30", "--no-progress"]) == 0
    assert np.bincount(load_dataset(out / "dataset").y).tolist() == [9, 9, 9]


def test_export_spec_matches_data_set(tmp_path):
    import json

    from export.cli import main as export_main

    from pipeline.signal.spec import PreprocessSpec

    out = tmp_path / "spec.json"
    assert export_main(["spec", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    spec = PreprocessSpec.from_dict(doc["spec"])
    assert doc["labels"] == ["NORMAL", "MI", "ARRHYTHMIA"] and doc["fingerprint"] == spec.fingerprint()
    assert np.allclose(doc["sos"], spec.sos()) and len(doc["sos"]) == 4


def test_host_ports_lists_what_pyserial_sees():
    from serial.tools import list_ports

    out = subprocess.run([sys.executable, "-m", "host.cli", "ports"], capture_output=True, text=True, check=True).stdout
    ports = list(list_ports.comports())
    assert len(out.splitlines()) == max(1, len(ports))
    assert all(p.device in out for p in ports) and (ports or "no serial ports found" in out)
