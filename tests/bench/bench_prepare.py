"""Records/s of data set preparation on the shared PhysioNet copies: one core vs all cores.

Run by hand:  .venv/bin/python tests/bench/bench_prepare.py [--data ../shared/data] [--repeat 3]
Prints a table and writes tests/bench/results/bench_prepare.json. The timed part is the
build (read, resample, filter, window, z-score, write), planning included.
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
import warnings
from pathlib import Path

from pipeline.sources.build import BuildConfig, build
from pipeline.sources import mitdb, ptbxl
from pipeline.sources.base import Options
from pipeline.signal.spec import PreprocessSpec

HERE = Path(__file__).resolve().parent


def cases(data: Path) -> dict:
    spec = PreprocessSpec()
    return {
        "ptbxl lead II (loose)": (lambda: ptbxl.plan(data / "ptbxl", "loose"), Options(spec, spec.dataset_hop, ("II",))),
        "ptbxl 12 leads (loose)": (lambda: ptbxl.plan(data / "ptbxl", "loose"), Options(spec, spec.dataset_hop, "all")),
        "mitdb MLII": (lambda: mitdb.plan(data / "mitdb"), Options(spec, spec.dataset_hop, mitdb.DEFAULT_LEADS, fallback=True)),
    }


def time_case(make_plan, opts: Options, jobs: int, repeat: int) -> tuple[float, int]:
    best = float("inf")
    n = 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            plan = make_plan()
            build([(plan, opts)], BuildConfig(Path(tmp) / "ds", "three_class", opts.spec, jobs=jobs, progress=False))
            best = min(best, time.perf_counter() - t0)
            n = len(plan.tasks)
    return best, n


def _burn(n: int) -> int:
    return sum(i * i for i in range(n))


def cpu_ceiling(cores: int, n: int = 3_000_000) -> float:
    """Speed-up of pure CPU-bound Python on `cores` processes: what this machine allows at best."""
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    for _ in range(2 * cores):
        _burn(n)
    serial = time.perf_counter() - t0
    with ProcessPoolExecutor(cores) as pool:
        t0 = time.perf_counter()
        list(pool.map(_burn, [n] * (2 * cores)))
        return serial / (time.perf_counter() - t0)


def peak_rss_mb(data: Path, case: str) -> tuple[float, float]:
    """Peak RSS of a one-core build of `case` in a fresh process, and the size of its X.npy (MB)."""
    code = (
        "import resource, sys, tempfile, warnings; from pathlib import Path;"
        "sys.path.insert(0, %r); import bench_prepare as b; from pipeline.sources.build import BuildConfig, build;"
        "warnings.simplefilter('ignore'); make, opts = b.cases(Path(%r))[%r];"
        "tmp = tempfile.mkdtemp(); out = build([(make(), opts)], BuildConfig(Path(tmp) / 'ds', 'three_class', opts.spec, jobs=1, progress=False));"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, (out / 'X.npy').stat().st_size / 2**20)"
    ) % (str(HERE), str(data), case)
    rss, size = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(rss), float(size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parents[2] / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rss1, size1 = peak_rss_mb(args.data, "ptbxl lead II (loose)")
    rss, size = peak_rss_mb(args.data, "ptbxl 12 leads (loose)")
    print(f"memory: peak RSS {rss1:.0f} MB for a {size1:.0f} MB X.npy (lead II), {rss:.0f} MB for {size:.0f} MB (12 leads)")
    cores = os.cpu_count() or 1
    ceiling = cpu_ceiling(cores)
    print(f"pure-Python CPU-bound speed-up on {cores} processes (the machine's ceiling): x{ceiling:.2f}")
    rows = []
    for name, (make_plan, opts) in cases(args.data).items():
        t1, n = time_case(make_plan, opts, 1, args.repeat)
        tn, _ = time_case(make_plan, opts, cores, args.repeat)
        rows.append({"case": name, "records": n, "one_core_rec_s": n / t1, "all_cores_rec_s": n / tn, "speedup": t1 / tn, "cores": cores})
        print(f"{name:26s} {n:5d} rec  1 core {n / t1:7.1f} rec/s  {cores} cores {n / tn:7.1f} rec/s  x{t1 / tn:.2f}")
    out = HERE / "results" / "bench_prepare.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cores": cores, "cpu_ceiling": ceiling, "peak_rss_mb": {"lead_II": rss1, "12_leads": rss}, "x_npy_mb": {"lead_II": size1, "12_leads": size}, "rows": rows}, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
