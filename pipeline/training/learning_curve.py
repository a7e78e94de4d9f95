"""Learning curve: test balanced accuracy against the number of training windows.

The same recipe is trained on growing patient-level shares of the train split (`TrainConfig.train_fraction`,
drawn per label; a smaller share is a subset of a larger one) and evaluated on one fixed test split,
with the bootstrap CI of each point. A straight line in log10(windows) is fitted to
the points and read off at a larger training set: a rough guide to what more data of the same kind
buys, not a promise (three points, overlapping CIs, and the curve bends as it saturates).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.models.checkpoint import load_checkpoint
from pipeline.data.dataset import load_dataset, write_json_atomic
from pipeline.inference.classifiers import Single
from pipeline.util.figures import save_figure
from pipeline.training.train import TrainConfig, patient_subset, train

CURVE_FILE = "learning_curve.json"
CURVE_PLOT = "learning_curve.png"


def fit_log_line(windows: Sequence[int], accuracy: Sequence[float]) -> tuple[float, float]:
    """(slope per decade, intercept) of accuracy = slope * log10(windows) + intercept (least squares)."""
    if len(windows) < 2:
        raise ValueError("a learning curve needs at least two points")
    slope, intercept = np.polyfit(np.log10(np.asarray(windows, dtype=float)), np.asarray(accuracy, dtype=float), 1)
    return float(slope), float(intercept)


def learning_curve(
    cfg: TrainConfig,
    data: Path,
    eval_data: Path,
    out_dir: Path,
    fractions: Sequence[float] = (0.25, 0.5, 1.0),
    eval_lead: str | None = None,
    predict_at: int | None = None,
    n_boot: int = 500,
    progress: bool = True,
) -> dict[str, Any]:
    """Train `cfg` on each fraction of `data`'s train split, evaluate on `eval_data`'s test split; JSON + PNG."""
    from pipeline.evaluation.evaluate import evaluate

    out_dir = Path(out_dir)
    ds = load_dataset(data)
    train_idx = ds.class_indices("train")
    test = load_dataset(eval_data)
    points = []
    for frac in sorted(fractions):
        run_dir = out_dir / f"fraction_{frac:g}"
        run_cfg = replace(cfg, train_fraction=frac)
        n = len(patient_subset(ds, train_idx, frac, cfg.seed))
        ckpt = train(run_cfg, data, run_dir, progress=progress)
        report = evaluate(Single(load_checkpoint(ckpt)), test, run_dir / "eval", "test", n_boot, quality=False, input_lead=eval_lead)
        ci = report["ci95"]["balanced_accuracy"]
        points.append({"fraction": frac, "train_windows": n, "balanced_accuracy": report["balanced_accuracy"], "ci95": ci,
                       "per_class_recall": report["per_class_recall"], "checkpoint": str(ckpt)})  # fmt: skip
    slope, intercept = fit_log_line([p["train_windows"] for p in points], [p["balanced_accuracy"] for p in points])
    result: dict[str, Any] = {
        "data": str(data),
        "eval_data": str(eval_data),
        "eval_lead": eval_lead,
        "points": points,
        "fit": {"model": "balanced_accuracy = slope * log10(train_windows) + intercept", "slope_per_decade": slope, "intercept": intercept},
        "recipe": {k: v for k, v in cfg.__dict__.items() if k != "train_fraction"},
    }
    if predict_at:
        result["prediction"] = {"train_windows": predict_at, "balanced_accuracy": slope * np.log10(predict_at) + intercept}
    write_json_atomic(out_dir / CURVE_FILE, json.loads(json.dumps(result, default=str)))
    plot_learning_curve(result, out_dir / CURVE_PLOT)
    return result


def plot_learning_curve(result: dict[str, Any], path: Path) -> Path:
    """PNG: the points with their 95% CIs, the fitted line, and the extrapolated point if any."""
    from matplotlib.figure import Figure

    pts = result["points"]
    n = np.array([p["train_windows"] for p in pts], dtype=float)
    acc = np.array([p["balanced_accuracy"] for p in pts])
    lo = acc - np.array([p["ci95"][0] for p in pts])
    hi = np.array([p["ci95"][1] for p in pts]) - acc
    fig = Figure(figsize=(6, 4), dpi=110)
    ax = fig.add_subplot()
    ax.errorbar(n, acc, yerr=[lo, hi], fmt="o", capsize=4, label="test balanced accuracy (95% CI)")
    fit = result["fit"]
    end = result.get("prediction", {}).get("train_windows", n.max())
    xs = np.logspace(np.log10(n.min()), np.log10(max(end, n.max())), 50)
    ax.plot(xs, fit["slope_per_decade"] * np.log10(xs) + fit["intercept"], "--", lw=1,
            label=f"fit: {fit['slope_per_decade']:+.3f} per decade of windows")  # fmt: skip
    if "prediction" in result:
        pr = result["prediction"]
        ax.plot([pr["train_windows"]], [pr["balanced_accuracy"]], "s", color="C3", label=f"extrapolated at {pr['train_windows']:,} windows")
    ax.set_xscale("log")
    ax.set_xlabel("training windows")
    ax.set_ylabel("balanced accuracy")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, Path(path))
