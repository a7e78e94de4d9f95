"""`ecg-host demo` (what `make demo` runs): the whole product on the embedded default.

Synthetic AD8232-like data -> train the MCU student -> int8 bundle (export/demo.py) -> the bundle's
generated firmware sources -> the firmware built and run as a virtual device (`simulate`), and as the
Cortex-M4 image under QEMU (`emulate`) when its toolchain is installed -> `parity` over the serial link
against each -> a short report, also written to `<out>/report.json`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.demo import DemoError, add_demo_options, read_results, report_lines, run_demo
from pipeline.util.console import DISCLAIMER

if TYPE_CHECKING:
    from .devices import DeviceBuild

CPU_MHZ = 64.0  # a Nano 33 BLE-class Cortex-M4F, as `ecg-host parity --cpu-mhz` assumes
SIMULATE_STREAMS = 2  # test records streamed sample by sample, plus one synthetic stream
SIMULATE_SYNTHETIC_S = 60.0
# The emulated M4 runs 62.5 M instructions per virtual second: every test window, but shorter streams.
EMULATE_STREAMS = 1
EMULATE_SYNTHETIC_S = 30.0
EMULATE_TIMEOUT_S = 30.0


def _device_summary(report: dict[str, Any], parity_json: Path) -> dict[str, Any]:
    """What the demo keeps of one `run_parity` report."""
    keep = ("windows", "raw_path_windows", "top1_agreement_float", "frames_dropped", "crc_errors", "samples_lost",
            "max_inference_ms", "inference_time_basis", "failures")  # fmt: skip
    return {
        "windows_identical_fraction": report["int8_identical_fraction"],
        "streams_identical_fraction": report["raw_path_identical_fraction"],
        **{k: report[k] for k in keep},
        "backend": report["device"]["backend"],
        "time_unit": report["device"]["time_unit"],
        "parity_json": str(parity_json),
        "parity_png": str(parity_json.with_suffix(".png")),
    }


def _parity_on(kind: str, bundle: Path, data: Path, out: Path, progress: bool, **opts: Any) -> tuple[dict[str, Any], DeviceBuild]:
    """Start the `kind` device ("simulate" or "emulate") and run `parity` against it over its pty."""
    from .devices import DeviceError, emulate, simulate
    from .parity import run_parity

    start = simulate if kind == "simulate" else emulate
    parity_json = out / f"parity_{kind}.json"
    with start(bundle) as dev:
        print(f"{kind}: {dev.build.target} build of the firmware on {dev.port}; parity over the serial link ...", flush=True)
        report, _ = run_parity(dev.port, bundle, data, cpu_hz=CPU_MHZ * 1e6, out=parity_json, progress=progress, **opts)
        if not dev.alive and dev.returncode not in (0, None):
            raise DeviceError(f"the {kind} device stopped (status {dev.returncode}):\n{dev.console()[-2000:]}")
    summary = _device_summary(report, parity_json)
    summary.update(program=str(dev.build.program), **{k: v for k, v in opts.items() if k != "timeout"})
    return summary, dev.build


def _m4_figures(summary: dict[str, Any], elf: Path) -> None:
    """Flash/RAM of the Cortex-M4 image and instructions per inference (the slowest RESULT's time)."""
    from export.protocol_defs import TimeUnit
    from export.qemu import elf_size

    from .devices import DeviceError

    size = elf_size(elf)
    summary.update(flash_bytes=size["flash_bytes"], ram_bytes=size["ram_bytes"])
    if summary["time_unit"] != TimeUnit.INSTRUCTIONS.name or not summary["max_inference_ms"]:
        raise DeviceError(f"emulate reported inference times in {summary['time_unit']}, not instructions")
    # run_parity turned instructions into ms at CPU_MHZ; the count itself is an integer.
    summary["instructions_per_inference"] = round(summary["max_inference_ms"] * CPU_MHZ * 1e3)
    summary["ms_at_64mhz"] = summary["instructions_per_inference"] / (CPU_MHZ * 1e3)


def emulate_unavailable(no_emulate: bool) -> str | None:
    """Why `emulate` does not run (None: it does)."""
    from export.qemu import APT_COMMAND, missing_tools

    if no_emulate:
        return "--no-emulate"
    missing = missing_tools()
    return f"Cortex-M4 toolchain missing ({', '.join(missing)}); install it with: sudo {APT_COMMAND}" if missing else None


def run_device_demo(out: Path, progress: bool, no_emulate: bool = False) -> dict[str, Any]:
    """The device part on a finished export part under `out`: generated sources, virtual devices, parity, report."""
    from export.firmware import generate_firmware

    out = Path(out)
    r = read_results(out)
    bundle, data = Path(r["bundle"]), Path(r["dataset"])
    failures = list(r["parity_failures"])

    firmware = out / "firmware"
    info = generate_firmware(bundle, firmware)
    r.update(firmware_sources=str(firmware), native_arena_bytes=info["native"]["arena_bytes"], devices={})

    sim, _ = _parity_on("simulate", bundle, data, out, progress, streams=SIMULATE_STREAMS, synthetic_seconds=SIMULATE_SYNTHETIC_S)
    r["devices"]["simulate"] = sim
    failures += [f"simulate: {f}" for f in sim["failures"]]

    r["emulate_skipped"] = emulate_unavailable(no_emulate)
    if r["emulate_skipped"] is None:
        emu, build = _parity_on("emulate", bundle, data, out, progress, streams=EMULATE_STREAMS,
                                synthetic_seconds=EMULATE_SYNTHETIC_S, timeout=EMULATE_TIMEOUT_S)  # fmt: skip
        _m4_figures(emu, build.program)
        r["devices"]["emulate"] = emu
        failures += [f"emulate: {f}" for f in emu["failures"]]
    r["parity_failures"] = failures
    r["report"] = str(out / "report.json")
    return r


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def report_text(r: dict[str, Any]) -> str:
    """The printed report of a `run_device_demo` result."""
    lines = ["", "== ecg-host demo report", *report_lines(r)]
    for kind, d in r["devices"].items():
        lines.append(
            f"{kind} ({d['backend']} backend): device == reference on {_pct(d['windows_identical_fraction'])} of {d['windows']} test windows "
            f"and {_pct(d['streams_identical_fraction'])} of {d['raw_path_windows']} windows streamed sample by sample "
            f"({d['streams']} test record(s) + {d['synthetic_seconds']:g} s of synthetic AD8232 signal); "
            f"{d['frames_dropped']} frames dropped, {d['crc_errors']} CRC errors"
        )
    emu = r["devices"].get("emulate")
    if emu:
        lines.append(
            f"Cortex-M4 firmware: flash {emu['flash_bytes']:,} B, RAM {emu['ram_bytes']:,} B; "
            f"{emu['instructions_per_inference']:,} instructions per inference (slowest of {emu['windows']}) "
            f"= {emu['ms_at_64mhz']:.0f} ms at {CPU_MHZ:g} MHz; native arena {r['native_arena_bytes']:,} B"
        )
    else:
        lines.append(f"emulate skipped: {r['emulate_skipped']}")
    lines += [
        f"bundle: {r['bundle']}",
        f"generated firmware sources: {r['firmware_sources']} (for the sketch: ecg-export firmware --bundle {r['bundle']} --out firmware/ecg_edge/src/generated)",
    ]
    for kind, d in r["devices"].items():
        lines.append(f"{kind} firmware build: {d['program']}")
    lines.append("parity reports: " + ", ".join(f"{d['parity_json']}, {d['parity_png']}" for d in r["devices"].values()))
    lines.append(f"report: {r['report']}")
    if "wall_seconds" in r:
        lines.append(f"wall time {r['wall_seconds']:.0f} s")
    lines += [f"FAIL: {f}" for f in r["parity_failures"]]
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    from export.onnx_export import ExportError
    from export.qemu import QemuError, ToolchainMissing
    from pipeline.data.dataset import write_json_atomic

    from .devices import DeviceError

    print(DISCLAIMER, flush=True)
    t0 = time.monotonic()
    out, progress = Path(args.out_dir), not args.no_progress
    try:
        if not args.skip_train:
            run_demo(out, args.epochs, args.patients_per_class, progress)
        r = run_device_demo(out, progress, args.no_emulate)
    except (DemoError, DeviceError, ExportError, QemuError, ToolchainMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    r["wall_seconds"] = round(time.monotonic() - t0, 1)
    r["disclaimer"] = DISCLAIMER
    write_json_atomic(Path(r["report"]), r)
    print(report_text(r))
    return 1 if r["parity_failures"] else 0


def add_demo_command(sub: argparse._SubParsersAction) -> None:
    """Add `demo` to ecg-host's subcommands."""
    p = sub.add_parser(
        "demo",
        help="the whole chain on the embedded default: data, training, bundle, firmware, virtual devices, parity",
        description="Synthetic AD8232-like data -> train the MCU student -> int8 bundle -> generated firmware built and run "
        "as a virtual device (simulate) and, when the Cortex-M4 toolchain is installed, under QEMU (emulate) -> parity over "
        "the serial link -> a short report (also <out-dir>/report.json). Exits 1 when any parity check fails.",
        epilog="Examples:\n  make demo                                   (the same, after setting up .venv)\n"
        "  ecg-host demo --out-dir runs/demo\n  ecg-host demo --no-emulate                  the virtual device only\n"
        "  ecg-host demo --out-dir runs/demo --skip-train   the device part again on an earlier run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_demo_options(p)
    p.add_argument("--no-emulate", action="store_true", help="skip the Cortex-M4 image under QEMU")
    p.add_argument("--skip-train", action="store_true",
                   help="reuse the data set, training run and bundle already in --out-dir (from an earlier demo); only the device part runs")  # fmt: skip
    p.set_defaults(func=cmd_demo)
