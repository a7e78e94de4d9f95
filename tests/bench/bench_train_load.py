"""One training epoch of the default student, idle and beside one competing CPU-bound process.

Run by hand:  .venv/bin/python tests/bench/bench_train_load.py [--per-class 30] [--seconds 900]

Each setting trains one epoch (`ecg-pipeline train --model mcu --epochs 1`, the default student with
its AD8232 augmentation, batch 64, validation included) in a fresh process, first on the idle machine,
then while tests/load.py runs one CPU-bound process beside it; the figure is history.json's epoch time:
- "1 thread", "2 threads": torch.set_num_threads(N) with OpenMP's own wait policy (what torch does
  without ecg-pipeline's setting, OMP_WAIT_POLICY unset);
- "2 threads, passive": the same with OMP_WAIT_POLICY=PASSIVE;
- "default": `ecg-pipeline train` without --threads (pipeline/util/threads.py chooses).
The data set is synthetic (tests/test_train.py's generator, single lead II used), of the size of the
README's figure: per class `--per-class` patients of `--seconds` s (27 of 30 in train: 7,290 windows at
the defaults). Writes tests/bench/results/bench_train_load.json; the machine's load average before and
after each run is in it (the machine may be shared: read the figures with it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from load import start_load  # noqa: E402
from test_train import write_synthetic_set  # noqa: E402

# argv runs the train command without ecg-pipeline's main (which sets the wait policy before torch loads)
_NO_POLICY = "import sys; from pipeline.cli import build_parser; a = build_parser().parse_args(sys.argv[1:]); sys.exit(a.func(a))"
SETTINGS: dict[str, tuple[list[str], dict[str, str | None]]] = {
    "1 thread": (["-c", _NO_POLICY, "train", "--threads", "1"], {"OMP_WAIT_POLICY": None}),
    "2 threads": (["-c", _NO_POLICY, "train", "--threads", "2"], {"OMP_WAIT_POLICY": None}),
    "2 threads, passive": (["-c", _NO_POLICY, "train", "--threads", "2"], {"OMP_WAIT_POLICY": "PASSIVE"}),
    "default": (["-m", "pipeline.cli", "train"], {"OMP_WAIT_POLICY": None}),
}


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def epoch_seconds(data: Path, argv: list[str], env_changes: dict[str, str | None], work: Path) -> dict[str, float]:
    """One epoch in a fresh process: its seconds (history.json) and the load average around it."""
    env = {k: v for k, v in os.environ.items() if k not in env_changes or env_changes[k] is not None}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    env["PYTHONPATH"] = str(REPO)
    out = Path(tempfile.mkdtemp(dir=work))
    before = load_average()
    cmd = [sys.executable, *argv, "--data", str(data), "--out-dir", str(out), "--model", "mcu", "--lead", "II", "--epochs", "1",
           "--patience", "0", "--no-progress"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    history = json.loads((out / "history.json").read_text())
    return {"epoch_s": round(float(history[0]["seconds"]), 2), "load_before": before, "load_after": load_average()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=30, help="synthetic patients per class (27 of 30 train)")
    ap.add_argument("--seconds", type=float, default=900.0, help="seconds of signal per patient (one window per 10 s)")
    ap.add_argument("--work", type=Path, default=None, help="where the data set and runs go (default: a temporary directory)")
    ap.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-train-load-"))
    data = work / f"synthetic_{args.per_class}x{args.seconds:g}"
    if not (data / "dataset.json").exists():
        t0 = time.perf_counter()
        write_synthetic_set(data, per_class=args.per_class, seconds=args.seconds)
        print(f"data set {data} in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = {}
    for name in args.settings:
        argv, env = SETTINGS[name]
        idle = epoch_seconds(data, argv, env, work)
        load = start_load(cpu=1, memory_mb=0)
        try:
            busy = epoch_seconds(data, argv, env, work)
        finally:
            load.stop()
        rows[name] = {"idle": idle, "busy": busy, "ratio": round(busy["epoch_s"] / idle["epoch_s"], 2)}
        print(f"{name:20s} idle {idle['epoch_s']:7.1f} s   with a CPU-bound process {busy['epoch_s']:7.1f} s   x{rows[name]['ratio']:.2f}"
              f"   (load average {idle['load_before']:.1f}-{busy['load_after']:.1f})", flush=True)  # fmt: skip
    out = HERE / "results" / "bench_train_load.json"
    out.parent.mkdir(exist_ok=True)
    result = {"machine": platform.platform(), "cores": os.cpu_count(), "data": str(data), "rows": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
