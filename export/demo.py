"""The quick start's main job: synthetic data -> train the MCU student -> bundle -> parity, in minutes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.console import DISCLAIMER


def run_demo(out: Path, epochs: int, patients: int, progress: bool) -> dict:
    """Every step on the embedded default; returns the short report it prints."""
    from pipeline.cli import main as pipeline_main

    from .bundle import build_bundle, read_manifest
    from .parity import Tolerances

    quiet = [] if progress else ["--no-progress"]
    data, run = out / "dataset", out / "train"
    steps = [
        ["demo", "--out-dir", str(out), "--patients-per-class", str(patients), *quiet],
        ["train", "--data", str(data), "--out-dir", str(run), "--model", "mcu", "--epochs", str(epochs), "--patience", "0",
         "--augment", "--balanced-sampler", "--scheduler", "cosine", *quiet],
        ["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(data), "--out-dir", str(run / "eval"), "--bootstrap", "200"],
    ]
    for argv in steps:
        if pipeline_main(argv) != 0:
            raise RuntimeError(f"demo step failed: ecg-pipeline {' '.join(argv)}")
    bundle, failed = build_bundle(run / "checkpoint.pt", data, out / "bundle", calib_size=120, tol=Tolerances())
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    parity = json.loads((bundle / "parity.json").read_text())
    budget = read_manifest(bundle)["budget"]
    return {
        "float_test_balanced_accuracy": metrics["balanced_accuracy"],
        "float_test_recall": metrics["per_class_recall"],
        "int8_top1_agreement": parity["runtimes"]["litert_int8_reference"]["top1_agreement"],
        "tflm_identical_fraction": parity["tflm_identical_fraction"],
        "int8_recall_delta": parity["int8_recall_delta"],
        "flatbuffer_bytes": budget["flatbuffer_bytes"],
        "arena_bytes": budget["arena_bytes"],
        "macs": budget["macs"],
        "bundle": str(bundle),
        "parity_failures": failed,
    }


def cmd_demo(args: argparse.Namespace) -> int:
    print(DISCLAIMER)
    r = run_demo(Path(args.out_dir), args.epochs, args.patients_per_class, not args.no_progress)
    recall = ", ".join(f"{k} {v:.2f}" for k, v in r["float_test_recall"].items())
    print(
        f"\nsynthetic test split: balanced accuracy {r['float_test_balanced_accuracy']:.3f} ({recall})\n"
        f"int8 vs float top-1 agreement {r['int8_top1_agreement']:.2%}; TFLM == LiteRT reference on {r['tflm_identical_fraction']:.0%} of windows\n"
        f"int8 model {r['flatbuffer_bytes']:,} B, TFLM arena {r['arena_bytes']:,} B, {r['macs']:,} MACs per window\n"
        f"bundle: {r['bundle']} (flash firmware/ from it; see README)"
    )
    for f in r["parity_failures"]:
        print(f"FAIL: {f}")
    return 1 if r["parity_failures"] else 0


def add_demo_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="quick-start main job: synthetic data, train, bundle, parity (a few minutes)")
    p.add_argument("--out-dir", default="runs/demo")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--patients-per-class", type=int, default=20)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
