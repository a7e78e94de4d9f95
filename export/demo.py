"""The quick start's export part: synthetic data -> train the MCU student -> bundle -> parity, in minutes.

`ecg-export demo` runs it alone; `ecg-host demo` (host/demo.py) continues on the virtual devices.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.util.console import DISCLAIMER


class DemoError(RuntimeError):
    """A step of the demo failed (the message names the step's command)."""


def demo_paths(out: Path) -> dict[str, Path]:
    """Where a demo run under `out` keeps its data set, training run, evaluation and bundle."""
    out = Path(out)
    return {"dataset": out / "dataset", "train": out / "train", "metrics": out / "train" / "eval" / "metrics.json", "bundle": out / "bundle"}


# A few epochs on synthetic data: the default recipe's weight average (EMA 0.99) would still sit near the
# initial weights, so the demo trains plainly.
SHORT_RUN = ["--lr", "1e-3", "--weight-decay", "0", "--ema", "0"]
# torch's sums depend on its thread count: the demo trains with a fixed one, so that its figures (and the
# tests' demo bundle, whose int8 parity a flipped window fails) repeat on any machine, busy or not.
DEMO_THREADS = 2


def export_steps(out: Path, epochs: int, patients: int, progress: bool) -> None:
    """Synthetic data set, training, evaluation and bundle under `out` (DemoError naming a failed step)."""
    from pipeline.cli import main as pipeline_main

    from .bundle import build_bundle
    from .parity import Tolerances

    paths = demo_paths(out)
    quiet = [] if progress else ["--no-progress"]
    data, run = paths["dataset"], paths["train"]
    steps = [
        ["demo", "--out-dir", str(out), "--patients-per-class", str(patients), *quiet],
        ["train", "--data", str(data), "--out-dir", str(run), "--model", "mcu", "--epochs", str(epochs), "--patience", "0",
         "--augment", "--balanced-sampler", "--scheduler", "cosine", "--threads", str(DEMO_THREADS), *SHORT_RUN, *quiet],
        ["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(data), "--out-dir", str(paths["metrics"].parent), "--bootstrap", "200",
         "--threads", str(DEMO_THREADS)],
    ]  # fmt: skip
    for argv in steps:
        if pipeline_main(argv) != 0:
            raise DemoError(f"demo step failed: ecg-pipeline {' '.join(argv)}")
    build_bundle(run / "checkpoint.pt", data, paths["bundle"], calib_size=120, tol=Tolerances())


def read_results(out: Path) -> dict[str, Any]:
    """The export part's short report from a demo run under `out` (FileNotFoundError naming what is missing)."""
    from .bundle import read_manifest
    from .parity import Tolerances, failures

    paths = demo_paths(out)
    for key in ("metrics", "bundle"):
        if not paths[key].exists():
            raise FileNotFoundError(f"{paths[key]}: missing; run the whole demo into {out} first")
    bundle = paths["bundle"]
    metrics = json.loads(paths["metrics"].read_text())
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
        "dataset": str(paths["dataset"]),
        "bundle": str(bundle),
        "parity_failures": failures(parity, Tolerances()),
    }


def run_demo(out: Path, epochs: int, patients: int, progress: bool) -> dict[str, Any]:
    """Every export step on the embedded default; returns the short report it prints."""
    export_steps(Path(out), epochs, patients, progress)
    return read_results(Path(out))


def report_lines(r: dict[str, Any]) -> list[str]:
    """The export part's report (from `read_results`) as lines of text."""
    recall = ", ".join(f"{k} {v:.2f}" for k, v in r["float_test_recall"].items())
    return [
        f"synthetic test split: balanced accuracy {r['float_test_balanced_accuracy']:.3f} ({recall})",
        f"int8 vs float top-1 agreement {r['int8_top1_agreement']:.2%}; TFLM == LiteRT reference on {r['tflm_identical_fraction']:.0%} of windows",
        f"int8 model {r['flatbuffer_bytes']:,} B, TFLM arena {r['arena_bytes']:,} B (tflite-micro Python runtime, 64-bit host), {r['macs']:,} MACs per window",
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    print(DISCLAIMER)
    r = run_demo(Path(args.out_dir), args.epochs, args.patients_per_class, not args.no_progress)
    print("\n" + "\n".join(report_lines(r)))
    print(f"bundle: {r['bundle']} (flash firmware/ from it; see README; `ecg-host demo` runs it on virtual devices)")
    for f in r["parity_failures"]:
        print(f"FAIL: {f}")
    return 1 if r["parity_failures"] else 0


def add_demo_options(p: argparse.ArgumentParser) -> None:
    """The options the export part takes (shared with `ecg-host demo`)."""
    p.add_argument("--out-dir", default="runs/demo", help="where the data set, training run and bundle go (default runs/demo)")
    p.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    p.add_argument("--patients-per-class", type=int, default=20, help="synthetic patients per class (default 20)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (they only show on a terminal anyway)")


def add_demo_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="quick-start export part: synthetic data, train, bundle, parity (a minute or so)")
    add_demo_options(p)
    p.set_defaults(func=cmd_demo)
