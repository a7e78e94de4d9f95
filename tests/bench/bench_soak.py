"""Soak of the virtual device: an hour of MIT-BIH and PTB-XL through `simulate --speed`, clean and noisy.

Run by hand:  .venv/bin/python tests/bench/bench_soak.py --bundle runs/demo/bundle --data ../shared/data/mitdb --data ../shared/data/ptbxl
Runs `ecg-host soak` (host/soak.py) against `simulate --speed 100`: SECONDS of signal on a clean line
(speed, identity, losses, host RSS growth), then the same signal through host/faults.py's proxy at
each bit error rate (drops, duplicates and pauses per byte at the same rate): frames sent, frames the
CRC rejected, corrupt frames accepted, RESULTs lost (and reported), resync time. Prints the table of
host/README.md and writes tests/bench/results/bench_soak.json (each run's whole report beside it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from host.devices import simulate
from host.faults import FaultSpec
from host.soak import run_soak, summary
from pipeline.util.atomic import write_text_atomic

HERE = Path(__file__).resolve().parent
BERS = (1e-6, 1e-5, 1e-4, 1e-3)


def soak(bundle: Path, data: list[Path], seconds: float, speed: float, faults: FaultSpec | None, out: Path) -> dict:
    with simulate(bundle, speed=speed) as dev:
        report, failed = run_soak(dev.port, bundle, data, seconds, faults=faults, out=out, timeout=30.0)
    print(summary(report), flush=True)
    for f in failed:
        print(f"FAIL: {f}", flush=True)
    return report


def row(name: str, r: dict) -> str:
    rs = r["resync_seconds"] or {}
    resync = " / ".join(f"{rs[d]['mean_s'] * 1e3:.1f} ({rs[d]['max_s'] * 1e3:.0f})" if rs.get(d, {}).get("events") else "-" for d in ("host_to_device", "device_to_host"))
    return (f"| {name} | {r['speedup']:.0f} x | {r['frames_sent']:,} | {r['frames_crc_rejected']:,} | {r['corrupt_frames_accepted']} | "
            f"{r['results_lost']} of {r['windows']:,} | {r['identical_fraction']:.2%} | {resync} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("runs/demo/bundle"))
    ap.add_argument("--data", type=Path, action="append", help="default: ../shared/data/mitdb and ../shared/data/ptbxl")
    ap.add_argument("--seconds", type=float, default=3600.0, help="signal of the clean soak")
    ap.add_argument("--fault-seconds", type=float, default=3600.0, help="signal of each noisy soak")
    ap.add_argument("--bers", type=float, nargs="*", default=list(BERS))
    ap.add_argument("--speed", type=float, default=100.0)
    ap.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = ap.parse_args()
    data = args.data or [Path("../shared/data/mitdb"), Path("../shared/data/ptbxl")]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    runs = {"clean": soak(args.bundle, data, args.seconds, args.speed, None, args.out_dir / "bench_soak_clean.json")}
    for ber in args.bers:
        spec = FaultSpec(ber, ber, ber, ber, seed=1)
        runs[f"BER {ber:g}"] = soak(args.bundle, data, args.fault_seconds, args.speed, spec, args.out_dir / f"bench_soak_ber{ber:g}.json")
    clean = runs["clean"]
    print(f"\nclean: {clean['signal_seconds']:.0f} s in {clean['wall_seconds']:.0f} s ({clean['speedup']:.0f} x), "
          f"identical {clean['identical_fraction']:.2%}, results lost {clean['results_lost']}, samples lost {clean['samples_lost']}, "
          f"host RSS growth {clean['host_rss_growth_bytes'] / 1e6:.2f} MB\n")  # fmt: skip
    print("| line | speed | frames sent | CRC rejected | corrupt accepted | RESULTs lost (reported) | identical | resync ms host->dev / dev->host, mean (max) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        print(row(name, r))
    keys = ("signal_seconds", "wall_seconds", "speedup", "windows", "results", "identical_fraction", "results_lost", "corrupt_frames_accepted",
            "samples_lost", "frames_dropped", "frames_sent", "frames_resent_host", "frames_crc_rejected", "resync_seconds", "host_rss_growth_bytes")  # fmt: skip
    write_text_atomic(args.out_dir / "bench_soak.json", json.dumps({k: {q: r[q] for q in keys} for k, r in runs.items()}, indent=2))


if __name__ == "__main__":
    main()
