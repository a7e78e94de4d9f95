"""`ecg-export`: bundle a checkpoint for the device, check parity across runtimes, report its budget."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from pipeline.util.console import DISCLAIMER, run
from pipeline.util.threads import prepare_openmp
from pipeline.data.dataset import load_dataset, write_json_atomic
from pipeline.data.labels import LABELS
from pipeline.signal.spec import DEFAULT_SPEC

from .qemu import TARGETS as QEMU_TARGETS


def cmd_spec(args: argparse.Namespace) -> int:
    """Write (or print) the PreprocessSpec with its SOS coefficients, from a data set or the default."""
    spec = load_dataset(args.data).spec if args.data else DEFAULT_SPEC
    doc = {"labels": list(LABELS), "spec": spec.to_dict(), "fingerprint": spec.fingerprint(), "sos": spec.sos().tolist()}
    if args.out:
        write_json_atomic(Path(args.out), doc)
        print(f"spec -> {args.out}")
    else:
        json.dump(doc, sys.stdout, indent=2)
        print()
    return 0


def _tolerances(args: argparse.Namespace):
    from .parity import Tolerances

    return Tolerances(min_int8_top1=args.min_int8_top1, tflm_identical=args.tflm_identical)


def _print_parity(report: dict, failed: list[str]) -> int:
    for name, r in report["runtimes"].items():
        answered = r.get("top1_agreement_answered")
        on_answered = f" ({answered:.4f} of the {report['answered_windows']} the float model answers)" if answered is not None else ""
        print(f"{name:24s} top-1 {r['top1_agreement']:.4f}{on_answered}  max|dlogit| {r['max_abs_logit_diff']:.3g}  mean|dprob| {r['mean_abs_prob_diff']:.3g}")
    print(f"TFLM == LiteRT reference kernels on {report['tflm_identical_fraction']:.2%} of {report['n_windows']} windows")
    print("int8 - float recall: " + ", ".join(f"{k} {v:+.3f}" for k, v in report["int8_recall_delta"].items() if v is not None))
    for f in failed:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failed else 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import build_bundle, read_manifest

    out, failed = build_bundle(args.checkpoint, args.data, args.out, args.calib_size, args.calib_seed, args.parity_limit, _tolerances(args))
    m = read_manifest(out)
    b = m["budget"]
    print(f"bundle -> {out}")
    print(f"int8 flatbuffer {b['flatbuffer_bytes']} B, weights {b['weight_bytes']} B, TFLM arena {b['arena_bytes']} B (tflite-micro Python runtime, 64-bit host), {b['macs']:,} MACs, ops {', '.join(b['ops'])}")
    return _print_parity(json.loads((out / "parity.json").read_text()), failed)


def cmd_parity(args: argparse.Namespace) -> int:
    from .bundle import bundle_parity

    report, failed = bundle_parity(args.bundle, args.data, args.limit, _tolerances(args))
    print(f"-> {Path(args.bundle) / 'parity.json'}, {Path(args.bundle) / 'parity.png'}")
    return _print_parity(report, failed)


def cmd_budget(args: argparse.Namespace) -> int:
    from .budget import budget
    from .bundle import read_manifest

    manifest = read_manifest(args.bundle)
    cost = budget((Path(args.bundle) / "model_int8.tflite").read_bytes(), macs=manifest["budget"].get("macs"))
    for key in ("flatbuffer_bytes", "weight_bytes", "arena_bytes", "macs"):
        print(f"{key:17s} {cost[key]:>12,}")
    print("ops              " + ", ".join(f"{op} x{n}" for op, n in sorted(cost["op_counts"].items())))
    return 0


def cmd_firmware(args: argparse.Namespace) -> int:
    from .firmware import generate_firmware

    info = generate_firmware(args.bundle, args.out)
    n = info["native"]
    print(f"generated sources -> {args.out} ({', '.join(sorted(info['files']))})")
    ops = ", ".join(f"{op} x{n['ops'].count(op)}" for op in sorted(set(n["ops"])))
    print(f"native backend: {n['blob_bytes']:,} B model, {n['arena_bytes']:,} B arena (TFLM {info['tflm_arena_bytes']:,} B), ops {ops}")
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    from .crosscheck import crosscheck, summary, write_report

    report, failed = crosscheck(
        args.bundle, args.data, args.target, mitdb=args.mitdb, mitdb_records=args.mitdb_records,
        max_seconds=args.max_seconds, synthetic_seconds=args.synthetic_seconds, limit=args.limit,
        raw_path_windows=args.raw_path_windows, work=args.work_dir, progress=not args.no_progress,
    )  # fmt: skip
    if args.out:
        write_report(report, args.out)
        print(f"-> {args.out}")
    print(summary(report))
    for f in failed:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failed else 0


def _tolerance_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-int8-top1", type=float, default=0.99, help="least top-1 agreement of int8 runtimes with torch")
    p.add_argument("--tflm-identical", type=float, default=1.0, help="least share of windows where TFLM equals LiteRT reference kernels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecg-export", description=f"Export a checkpoint for the device and check it. {DISCLAIMER}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("bundle", help="ONNX, float and int8 TFLite, C sources, manifest and parity report")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="data set: calibration from its train split, checks on its test split")
    p.add_argument("--out", type=Path, required=True, help="bundle directory (replaced atomically)")
    p.add_argument("--calib-size", type=int, default=200, help="calibration windows, stratified by class")
    p.add_argument("--calib-seed", type=int, default=0)
    p.add_argument("--parity-limit", type=int, default=0, help="only the first N test windows in the parity report (0: all)")
    _tolerance_options(p)
    p.set_defaults(func=cmd_bundle)
    p = sub.add_parser("parity", help="torch vs onnxruntime vs LiteRT (float, int8 reference/default) vs TFLM on a data set's test split")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--limit", type=int, default=0, help="only the first N test windows (0: all)")
    _tolerance_options(p)
    p.set_defaults(func=cmd_parity)
    p = sub.add_parser("budget", help="flatbuffer and weight bytes, TFLM arena, MACs and ops of a bundle's int8 model")
    p.add_argument("--bundle", type=Path, required=True)
    p.set_defaults(func=cmd_budget)
    p = sub.add_parser("firmware", help="write a bundle's generated C sources for the sketch (config, native model, TFLM model)")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("firmware/ecg_edge/src/generated"), help="directory (replaced as a whole)")
    p.set_defaults(func=cmd_firmware)
    p = sub.add_parser(
        "crosscheck",
        help="build the C core for a target and compare it with the Python reference and TFLM",
        description="Builds the firmware core (host, host-asan, or cortex-m4 / riscv32 under QEMU), streams records through it "
        "and runs the test windows through its native int8 kernels; exits 1 past tolerance. "
        "Example: ecg-export crosscheck --bundle runs/demo/bundle --data runs/demo/dataset --target cortex-m4 --out r.json",
    )
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="data set: its test windows and test records")
    p.add_argument("--target", choices=("host", "host-asan", *QEMU_TARGETS), default="host", help="host builds, or QEMU: cortex-m4 (mps2-an386), riscv32 (RV32IMC, virt), xtensa-lx106 (sim)")
    p.add_argument("--out", type=Path, help="write the report (JSON) here")
    p.add_argument("--mitdb", type=Path, help="MIT-BIH Arrhythmia directory: also stream its records (MLII, else the next lead the pipeline prefers)")
    p.add_argument("--mitdb-records", type=int, default=0, help="only the first N MIT-BIH records (0: all)")
    p.add_argument("--max-seconds", type=float, default=0.0, help="stream only the first S seconds of each MIT-BIH record (0: whole)")
    p.add_argument("--synthetic-seconds", type=float, default=180.0, help="length of each synthetic AD8232 stream")
    p.add_argument("--limit", type=int, default=0, help="only the first N test windows for the model check (0: all)")
    p.add_argument("--raw-path-windows", type=int, default=64, help="windows checked through the whole device path")
    p.add_argument("--work-dir", type=Path, help="keep builds and intermediate files here (default: a temporary directory)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_crosscheck)
    from .demo import add_demo_command

    add_demo_command(sub)
    p = sub.add_parser("spec", help="the preprocessing spec (rate, window, filter sections) as JSON")
    p.add_argument("--data", type=Path, help="take the spec of this data set (default: the built-in spec)")
    p.add_argument("--out", type=Path, help="write here instead of printing")
    p.set_defaults(func=cmd_spec)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    prepare_openmp()  # before torch loads (the imports below and build_parser)
    from pipeline.models.checkpoint import CheckpointError

    from .onnx_export import ExportError

    errors: tuple[type[BaseException], ...] = (OSError, ValueError, CheckpointError, ExportError)
    return run(build_parser(), argv, errors)


if __name__ == "__main__":
    sys.exit(main())
