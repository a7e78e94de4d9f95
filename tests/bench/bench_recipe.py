"""Wall time of `ecg-pipeline recipe` end to end on this machine (the issue's budget: 25 minutes).

Run by hand:  .venv/bin/python tests/bench/bench_recipe.py [--raw-dir ../shared/data] [--out-dir DIR]
Runs every step from nothing into a fresh directory (a temporary one unless --out-dir names an empty
one), then writes tests/bench/results/bench_recipe.json: seconds per step and in all, the machine, and
the report's targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from pipeline.cli import main
from pipeline.training.recipe import run_recipe

HERE = Path(__file__).resolve().parent
BUDGET_S = 25 * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw-dir", type=Path, default=HERE.parents[2] / "shared" / "data")
    ap.add_argument("--out-dir", type=Path, default=None, help="an empty directory (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out_dir or Path(tmp) / "recipe"
        if out.exists() and any(out.iterdir()):
            raise SystemExit(f"{out}: not empty (the benchmark runs every step from nothing)")
        t0 = time.perf_counter()
        report = run_recipe(args.raw_dir, out, main, progress=False)
        total = time.perf_counter() - t0
    result = {
        "seconds": round(total, 1),
        "budget_seconds": BUDGET_S,
        "within_budget": total <= BUDGET_S,
        "steps": report["wall_seconds"]["steps"],
        "targets": {k: v["value"] for k, v in report["targets"].items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.processor()},
    }
    path = HERE / "results" / "bench_recipe.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"recipe end to end: {total / 60:.1f} min (budget {BUDGET_S / 60:.0f} min) -> {path}")


if __name__ == "__main__":
    main()
