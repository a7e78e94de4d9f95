"""Firmware cost on the emulated Cortex-M4F: bytes, instructions per inference/MAC/sample, time per board.

Run by hand:  .venv/bin/python tests/bench/bench_firmware.py --bundle runs/demo/bundle --data runs/demo/dataset
Runs `ecg-export crosscheck --target cortex-m4` (QEMU mps2-an386, instructions counted with -icount)
on a few test windows and prints the README's firmware table and where the instructions go (per op).
Times assume one instruction per cycle (a Cortex-M4 retires most integer/DSP instructions in one;
loads, LDM/PUSH and branches take more, so real boards are somewhat slower). Writes tests/bench/results/bench_firmware.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from export.crosscheck import CLOCKS_HZ, crosscheck

HERE = Path(__file__).resolve().parent


def op_table(ops: list[dict]) -> str:
    """crosscheck's per-op instruction counts as a text table (ops without instructions left out)."""
    lines = [f"{'op':>3}  {'type':<16}{'MACs':>10}{'instructions':>14}{'per MAC':>9}"]
    for o in ops:
        if o["instructions"] or o["macs"]:
            per_mac = f"{o['instructions_per_mac']:.3f}" if o["instructions_per_mac"] is not None else ""
            lines.append(f"{o['index']:>3}  {o['op']:<16}{o['macs']:>10,}{o['instructions']:>14,}{per_mac:>9}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("runs/demo/bundle"))
    ap.add_argument("--data", type=Path, default=Path("runs/demo/dataset"))
    ap.add_argument("--windows", type=int, default=8)
    args = ap.parse_args()
    report, failed = crosscheck(args.bundle, args.data, "cortex-m4", limit=args.windows, raw_path_windows=4, synthetic_seconds=60)
    hop_s = 2.5
    rows = [
        ("flash (image: core + native kernels + model)", f"{report['flash_bytes']:,} B"),
        ("RAM (data + bss + stack)", f"{report['ram_bytes']:,} B"),
        ("native arena / TFLM arena", f"{report['native_arena_bytes']:,} B / {report['tflm_arena_bytes']:,} B"),
        ("instructions per inference (DSP path)", f"{report['instructions_per_inference']:,}"),
        ("instructions per MAC: DSP / portable", f"{report['instructions_per_mac']:.3f} / {report.get('instructions_per_mac_portable', float('nan')):.3f}"),
        ("preprocessing: instructions per sample / per window", f"{report['preprocess_instructions_per_sample']:.0f} / {report['preprocess_instructions_per_window']:,.0f}"),
    ]
    for board, hz in CLOCKS_HZ.items():
        ms = report["instructions_per_inference"] / hz * 1e3
        rows.append((f"inference at {hz / 1e6:.0f} MHz ({board})", f"{ms:.1f} ms, {ms / 1e3 / hop_s:.1%} of a 2.5 s hop"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print()
    print(op_table(report.get("op_instructions") or []))
    if failed:
        print("FAILED:", failed)
    out = HERE / "results" / "bench_firmware.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
