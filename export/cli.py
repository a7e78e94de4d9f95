"""`ecg-export`: artifacts for the firmware. For now: the preprocessing spec the device must match."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from pipeline.console import DISCLAIMER, run
from pipeline.dataset import load_dataset, write_json_atomic
from pipeline.labels import LABELS
from pipeline.spec import DEFAULT_SPEC

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg-export",
        description=f"Export models and preprocessing for the device (ONNX, int8 TFLite and C arrays arrive with the export issue). {DISCLAIMER}",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("spec", help="the preprocessing spec (rate, window, filter sections) as JSON")
    p.add_argument("--data", type=Path, help="take the spec of this data set (default: the built-in spec)")
    p.add_argument("--out", type=Path, help="write here instead of printing")
    p.set_defaults(func=cmd_spec)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv, (OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
