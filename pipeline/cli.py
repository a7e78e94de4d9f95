"""`ecg-pipeline`: download, prepare, inspect and the quick-start demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from pipeline.sources.build import SOURCES, BuildConfig, BuildError, build, ptbxl_dirs_plan
from pipeline.util.console import DISCLAIMER, run
from pipeline.util.threads import prepare_openmp
from pipeline.data.dataset import DatasetError, load_dataset, write_json_atomic
from pipeline.data.records import ALL_LEADS, RecordError
from pipeline.data.summary import plot_examples, print_summary
from pipeline.data.label_rules import CINC2017_NORMAL_SETS
from pipeline.sources import cinc2017, mitdb, nsrdb, ptbdb, ptbxl, recordings, synthetic
from pipeline.sources.base import Options, Plan
from pipeline.signal.spec import PreprocessSpec
from pipeline.sources.build import cinc_plans
from pipeline.data.label_rules import LABEL_MODES
from pipeline.sources import cinc

DATA_ENV = "ECG_EDGE_DATA_DIR"


def default_raw_dir() -> Path:
    return Path(os.environ.get(DATA_ENV, "data/raw"))


def spec_from_args(args: argparse.Namespace) -> PreprocessSpec:
    spec = PreprocessSpec(filter=args.filter, filter_init=args.filter_init, notch_hz=args.notch)
    return spec.with_(dataset_hop=round(args.hop_sec * spec.fs))


def options_for(db: str, args: argparse.Namespace, spec: PreprocessSpec, normal_label: str = "NORMAL") -> Options:
    source = SOURCES[db]
    leads = tuple(args.leads) if getattr(args, "leads", None) else source.DEFAULT_LEADS
    return Options(
        spec=spec,
        hop=spec.dataset_hop,
        leads=leads,
        fallback=True,
        max_windows_per_record=getattr(args, "max_windows_per_record", 0) or 0,
        arrhythmia_min_count=getattr(args, "arrhythmia_min_count", 1),
        arrhythmia_min_ratio=getattr(args, "arrhythmia_min_ratio", 0.0),
        seed=args.seed,
        normal_label=normal_label,
        mitdb_normal=getattr(args, "mitdb_normal", False),
    )


def ptbxl_plan(args: argparse.Namespace, spec: PreprocessSpec, mode: str, roots: list[Path]) -> tuple[Plan, Options]:
    """PTB-XL from one or more directories (each ecg_id once, the first directory wins)."""
    lead = getattr(args, "lead", "II")
    leads: tuple[str, ...] | str = ALL_LEADS if lead.lower() == ALL_LEADS else (lead,)
    opts = Options(spec=spec, hop=spec.dataset_hop, leads=leads, fallback=False, seed=args.seed)
    plan = ptbxl_dirs_plan(roots, mode, getattr(args, "rate", 100), not getattr(args, "strict_rhythm", False), getattr(args, "max_records", 0),
                           getattr(args, "ectopic_as_arrhythmia", False))  # fmt: skip
    return plan, opts


def _jsonable(v: object) -> object:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def run_build(args: argparse.Namespace, plans: list[tuple[Plan, Options]], label_set: str) -> int:
    cfg = BuildConfig(
        out=Path(args.out),
        label_set=label_set,
        spec=plans[0][1].spec,
        jobs=args.jobs,
        balance=args.balance,
        seed=args.seed,
        skip_bad_records=args.skip_bad_records,
        strict_files=args.strict_files,
        progress=not args.no_progress,
        args={k: _jsonable(v) for k, v in vars(args).items() if k != "func"},
    )
    out = build(plans, cfg)
    print_summary(load_dataset(out).meta, out)
    return 0


def cmd_prepare_ptbxl(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    roots = [Path(d) for d in args.ptbxl_dir] if args.ptbxl_dir else [Path(args.raw_dir) / "ptbxl"]
    label_set = args.label_mode if args.label_mode in ptbxl.TWO_STAGE_MODES else "three_class"
    return run_build(args, [ptbxl_plan(args, spec, args.label_mode, roots)], label_set)


def _mixed(args: argparse.Namespace, label_set: str, allowed: Sequence[str]) -> int:
    spec = spec_from_args(args)
    raw = Path(args.raw_dir)
    plans = []
    for db in args.datasets:
        if db not in allowed:
            raise BuildError(f"{db} cannot contribute to a {label_set} set (allowed: {list(allowed)})")
        root = raw / db
        if not root.is_dir():
            raise BuildError(f"{root}: no such directory (download with `ecg-pipeline download --datasets {db}`)")
        if db == ptbxl.NAME:
            plans.append(ptbxl_plan(args, spec, label_set, [root]))
            continue
        normal = "SINUS" if label_set == "stage1" else "NORMAL"
        plans.append((SOURCES[db].plan(root), options_for(db, args, spec, normal)))
    return run_build(args, plans, label_set)


def cmd_prepare_mixed(args: argparse.Namespace) -> int:
    return _mixed(args, "three_class", (mitdb.NAME, nsrdb.NAME, ptbdb.NAME))


def cmd_prepare_stage1(args: argparse.Namespace) -> int:
    return _mixed(args, "stage1", (mitdb.NAME, nsrdb.NAME, ptbxl.NAME))


def cmd_prepare_stage2(args: argparse.Namespace) -> int:
    return _mixed(args, "stage2", (ptbxl.NAME, ptbdb.NAME))


def cmd_prepare_cinc(args: argparse.Namespace) -> int:
    """The challenge layout, with PTB-XL directories in the order given (each record id once, the first wins)."""
    spec = spec_from_args(args)
    leads: tuple[str, ...] | str = ALL_LEADS if args.lead.lower() == ALL_LEADS else (args.lead,)
    opts = Options(spec=spec, hop=spec.dataset_hop, leads=leads, fallback=False, seed=args.seed,
                   label_mode=args.label_mode, ectopic=args.ectopic_as_arrhythmia)  # fmt: skip
    plans = cinc_plans(args.dirs_in_order, args.label_mode, args.rate, args.ectopic_as_arrhythmia)
    return run_build(args, [(p, opts) for p in plans], "three_class")


class _DirInOrder(argparse.Action):
    """A repeatable directory option that also records (kind, dir) in `dirs_in_order`, in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), values])
        namespace.dirs_in_order = [*(getattr(namespace, "dirs_in_order", None) or []), (self.const, values)]


def _cinc_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source-dir", type=Path, action=_DirInOrder, const=cinc.NAME, required=True,
                   help="challenge-layout directory (.hea + .mat with '# Dx:' SNOMED CT codes, records found below it); repeatable")
    p.add_argument("--ptbxl-dir", type=Path, action=_DirInOrder, const=ptbxl.NAME,
                   help="PTB-XL root: its metadata give HR records (HRxxxxx = ecg_id xxxxx) their patient and strat_fold, its records "
                        "on disk join the set; repeatable. Each record id once: the first directory given wins")
    p.add_argument("--label-mode", choices=LABEL_MODES, default="loose", help="PTB-XL's rule on the mapped SNOMED CT codes")
    p.add_argument("--ectopic-as-arrhythmia", action="store_true", help="premature-beat codes (PVC, PAC, ...) count as a rhythm other than SR")
    p.add_argument("--lead", default="II", help="lead by name (aVR etc. in any case), or 'all' for 12 leads")
    p.add_argument("--rate", type=int, choices=(100, 500), default=100, help="records100 or records500 of --ptbxl-dir records")
    p.set_defaults(dirs_in_order=None)
    _common(p)


SYNTHETIC_STAMP = ".ecg_edge_synthetic.json"


def ensure_synthetic(root: Path, args: argparse.Namespace) -> Path:
    """Generate the synthetic WFDB database at `root` unless the same one is already there."""
    from pipeline.data.synthetic import write_synthetic_database

    wanted = {"patients_per_class": args.patients_per_class, "duration_s": args.duration, "seed": args.seed}
    stamp = root / SYNTHETIC_STAMP
    if args.regenerate or not stamp.exists() or json.loads(stamp.read_text()) != wanted:
        write_synthetic_database(
            root, n_patients_per_class=args.patients_per_class, duration_s=args.duration, seed=args.seed, progress=not args.no_progress
        )
        write_json_atomic(stamp, wanted)
    return root


def cmd_prepare_synthetic(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    root = ensure_synthetic(Path(args.source_dir) if args.source_dir else default_raw_dir() / "synthetic", args)
    return run_build(args, [(synthetic.plan(root), options_for(synthetic.NAME, args, spec))], "three_class")


def cmd_prepare_recordings(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    root = Path(args.source_dir)
    if not root.is_dir():
        raise BuildError(f"{root}: no such directory of recordings")
    return run_build(args, [(recordings.plan(root), options_for(recordings.NAME, args, spec))], "three_class")


def cmd_prepare_cinc2017(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    root = Path(args.source_dir)
    if not root.is_dir():
        raise BuildError(f"{root}: no such CinC 2017 directory")
    plan = cinc2017.plan(root, args.seed, args.n_label_set, other=not args.leave_out_other)
    return run_build(args, [(plan, options_for(cinc2017.NAME, args, spec))], "three_class")


def cmd_recipe(args: argparse.Namespace) -> int:
    from pipeline.training.recipe import REPORT, print_report, run_recipe

    print(DISCLAIMER)
    report = run_recipe(args.raw_dir, args.out_dir, main, args.epochs, args.jobs, not args.no_progress, args.baseline)
    print_report(report)
    print(f"-> {args.out_dir / 'checkpoint.pt'}, {args.out_dir / 'bundle'}, {args.out_dir / REPORT}")
    return 0


def cmd_beats(args: argparse.Namespace) -> int:
    from pipeline.evaluation.beat_grading import BeatGradingError, grade_mitdb, plot_worst

    print(DISCLAIMER)
    mitdb = args.raw_dir / "mitdb" if (args.raw_dir / "mitdb").is_dir() else args.raw_dir
    records = [r for r in args.records.split(",") if r] if args.records else None
    try:
        report = grade_mitdb(mitdb, records, jobs=args.jobs or os.cpu_count() or 1, progress=not args.no_progress)
    except (BeatGradingError, RecordError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json_atomic(args.out, report)
    plot = args.plot or args.out.with_suffix(".png")
    plot_worst(report, mitdb, plot)
    print(f"{report['records']} records, {report['beats']} beats: sensitivity {100 * report['sensitivity']:.2f}%, "
          f"positive predictivity {100 * report['positive_predictivity']:.2f}% ({report['fn']} missed, {report['fp']} extra; "
          f"worst {', '.join(report['worst'])}; {report['wall_seconds']} s)")
    print(f"-> {args.out}, {plot}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    ds = load_dataset(args.dataset)
    print_summary(ds.meta, ds.path)
    if args.plot:
        print(f"example windows -> {plot_examples(ds, Path(args.plot), per_class=args.per_class)}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from pipeline.data.merge import merge_datasets

    out = merge_datasets(args.data, args.out, args.lead_as)
    print_summary(load_dataset(out).meta, out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The quick start's main job on the embedded synthetic default."""
    print(DISCLAIMER)
    out = Path(args.demo_out)
    args.source_dir = str(out / "raw" / "synthetic")
    args.out = str(out / "dataset")
    cmd_prepare_synthetic(args)
    png = plot_examples(load_dataset(args.out), out / "examples.png")
    print(f"data set: {args.out}\nexample windows: {png}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from pipeline.data import download

    return download.run_from_args(args)


def _common(p: argparse.ArgumentParser, with_out: bool = True) -> None:
    g = p.add_argument_group("preprocessing and output")
    if with_out:
        g.add_argument("--out", required=True, help="data set directory to write (replaced atomically)")
    g.add_argument("--hop-sec", type=float, default=10.0, help="hop between windows in seconds (default 10)")
    g.add_argument("--filter", choices=("causal", "zero-phase"), default="causal", help="zero-phase only reproduces the seed project")
    g.add_argument("--filter-init", choices=("steady", "zero"), default="steady", help="causal filter start state")
    g.add_argument("--notch", type=float, choices=(50.0, 60.0), default=None, help="mains notch in Hz")
    g.add_argument("--balance", action="store_true", help="down-sample each split to its smallest class (seeded)")
    g.add_argument("--seed", type=int, default=13, help="seed for splits, balancing and window caps")
    g.add_argument("--jobs", type=int, default=0, help="worker processes (0: every core)")
    g.add_argument("--skip-bad-records", action="store_true", help="leave unreadable records out (counted) instead of stopping")
    g.add_argument("--strict-files", action="store_true", help="stop when a listed record is absent on disk")
    g.add_argument("--no-progress", action="store_true")


def _raw_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw-dir", type=Path, default=default_raw_dir(), help=f"databases in PhysioNet layout (default ${DATA_ENV} or data/raw)")


def _beat_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--leads", nargs="+", help="lead preference order (default per database, e.g. MLII II V1 V2 I)")
    p.add_argument("--arrhythmia-min-count", type=int, default=1, help="non-normal beats a window needs")
    p.add_argument("--arrhythmia-min-ratio", type=float, default=0.0, help="share of non-normal beats a window needs")
    p.add_argument("--max-windows-per-record", type=int, default=nsrdb.DEFAULT_MAX_WINDOWS, help="cap per record (seeded; 0: none)")
    p.add_argument("--mitdb-normal", action="store_true",
                   help="MIT-BIH also gives NORMAL windows (sinus rhythm, normal beats only): an external check set, not for training")  # fmt: skip


def _ptbxl_options(p: argparse.ArgumentParser, with_dir: bool) -> None:
    if with_dir:
        p.add_argument(
            "--ptbxl-dir", type=Path, action="append", default=None,
            help="PTB-XL root (default <raw-dir>/ptbxl); repeat to combine directories: each ecg_id once, the first directory wins",
        )
    p.add_argument("--lead", default="II", help="PTB-XL lead by name, or 'all' for 12 leads")
    p.add_argument("--rate", type=int, choices=(100, 500), default=100, help="records100 or records500")
    p.add_argument("--strict-rhythm", action="store_true", help="stage 1: SINUS only with an explicit SR code")
    p.add_argument("--max-records", type=int, default=0, help="only the first N metadata rows (0: all)")


def _synthetic_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patients-per-class", type=int, default=20)
    p.add_argument("--duration", type=float, default=60.0, help="seconds per synthetic record")
    p.add_argument("--regenerate", action="store_true", help="write the synthetic records again")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecg-pipeline", description=f"ECG data pipeline. {DISCLAIMER}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("download", cmd_download, "download PhysioNet databases (resumable, sha256-verified)")
    from pipeline.data import download

    download.add_arguments(p)

    prep = sub.add_parser("prepare", help="build a window data set", description="build a window data set")
    psub = prep.add_subparsers(dest="source", required=True, metavar="SOURCE")
    p = add("ptbxl", cmd_prepare_ptbxl, "PTB-XL: three classes (loose/semi/strict) or a two-stage set", psub)
    p.add_argument("--label-mode", choices=ptbxl.ALL_MODES, default="loose")
    p.add_argument("--ectopic-as-arrhythmia", action="store_true",
                   help="premature-beat statements (PVC, PAC, PRC(S)) count as a rhythm other than SR, as one non-normal beat "
                        "makes an MIT-BIH window ARRHYTHMIA (default: a sinus record with them keeps its label)")  # fmt: skip
    _ptbxl_options(p, with_dir=True)
    _raw_dir(p)
    _common(p)
    for name, func, dbs, help in (
        ("mixed", cmd_prepare_mixed, ["mitdb", "nsrdb", "ptbdb"], "three classes from MIT-BIH Arrhythmia, MIT-BIH NSR and PTB Diagnostic"),
        ("stage1", cmd_prepare_stage1, ["mitdb", "nsrdb"], "two-stage set 1 (SINUS vs ARRHYTHMIA) from several databases"),
        ("stage2", cmd_prepare_stage2, ["ptbxl", "ptbdb"], "two-stage set 2 (NORMAL vs MI) from PTB-XL and PTB Diagnostic"),
    ):
        p = add(name, func, help, psub)
        p.add_argument("--datasets", nargs="+", default=dbs, choices=sorted(SOURCES))
        _raw_dir(p)
        _beat_options(p)
        _ptbxl_options(p, with_dir=False)
        _common(p)
    p = add("cinc", cmd_prepare_cinc, "PhysioNet/CinC Challenge 2020/2021 layout (SNOMED CT codes, any rate), labels by PTB-XL's rule", psub)
    _cinc_parser(p)
    p = add("recordings", cmd_prepare_recordings, "your own WFDB recordings (ecg-host record --label L --patient P), any rate", psub)
    p.add_argument("--source-dir", type=Path, required=True, help="directory of WFDB records with 'label:' and 'patient:' header comments")
    p.add_argument("--leads", nargs="+", help="lead preference order (default II)")
    _common(p)
    p = add("cinc2017", cmd_prepare_cinc2017, "PhysioNet/CinC 2017: single-lead consumer-device recordings (N, AF, other rhythm, noisy)", psub)
    p.add_argument("--source-dir", type=Path, required=True, help="the challenge's training folder (.hea + .mat, REFERENCE-v3.csv)")
    p.add_argument("--n-label-set", choices=CINC2017_NORMAL_SETS, default="NORMAL",
                   help="what an N (normal sinus rhythm) window accepts in training: NORMAL, or the set NORMAL|MI "
                        "(N says nothing about infarction); it is reported as NORMAL either way")  # fmt: skip
    p.add_argument("--leave-out-other", action="store_true", help="leave O (rhythms other than sinus and AF) out instead of ARRHYTHMIA")
    p.add_argument("--max-windows-per-record", type=int, default=0, help="at most this many windows per record (seeded; 0: every window)")
    _common(p)
    p = add("synthetic", cmd_prepare_synthetic, "the embedded AD8232-like synthetic set (no download)", psub)
    p.add_argument("--source-dir", type=Path, default=None, help="where the synthetic WFDB records live (default <raw-dir>/synthetic)")
    _synthetic_options(p)
    _common(p)

    p = add("recipe", cmd_recipe, "the default recipe end to end: every prepare and merge, train, evaluate on each test set, ecg-export bundle; "
            "reruns skip finished steps")
    p.add_argument("--raw-dir", type=Path, required=True, help="databases in PhysioNet layout: ptbxl, cinc2017, mitdb (and ptbxl_derived when present)")
    p.add_argument("--out-dir", type=Path, required=True, help="where checkpoint.pt, bundle/, report.json and the data sets go")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (quick checks)")
    p.add_argument("--baseline", type=Path, default=None, help="a checkpoint to evaluate on the same test sets, beside the new model in report.json")
    p.add_argument("--jobs", type=int, default=0, help="worker processes for prepare (0: every core)")
    p.add_argument("--no-progress", action="store_true")
    p = add("beats", cmd_beats, "grade the device's beat detector on MIT-BIH, beat by beat (sensitivity, positive predictivity)")
    p.add_argument("--raw-dir", type=Path, required=True, help="a folder holding mitdb/ (or the MIT-BIH folder itself)")
    p.add_argument("--out", type=Path, required=True, help="the report (JSON); a PNG of the worst records goes beside it")
    p.add_argument("--records", help="comma-separated record names (default: every record in RECORDS)")
    p.add_argument("--plot", type=Path, default=None, help="where the PNG goes (default: --out with .png)")
    p.add_argument("--jobs", type=int, default=0, help="worker processes (0: every core)")
    p.add_argument("--no-progress", action="store_true")

    p = add("inspect", cmd_inspect, "print a data set's class/split table; optionally plot examples")
    p.add_argument("dataset", type=Path)
    p.add_argument("--plot", type=Path, help="write a PNG of example windows per class")
    p.add_argument("--per-class", type=int, default=3)

    p = add("merge", cmd_merge, "merge data sets of the same preprocessing and labels (e.g. PTB-XL lead I + lead II + MIT-BIH)")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="data sets to merge, in order")
    p.add_argument("--lead-as", help="single-lead inputs become this lead of the merged set (e.g. II: train one input lead on several)")
    p.add_argument("--out", type=Path, required=True)

    from pipeline.cli_models import add_model_commands

    add_model_commands(add)

    p = add("demo", cmd_demo, "quick-start main job on the synthetic default: build a data set and summarise it")
    p.add_argument("--out-dir", dest="demo_out", default="runs/demo", help="where the demo writes (default runs/demo)")
    _synthetic_options(p)
    _common(p, with_out=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    prepare_openmp()  # before torch loads (the imports below and build_parser)
    from pipeline.models.checkpoint import CheckpointError

    from pipeline.training.recipe import RecipeError

    return run(build_parser(), argv, (BuildError, DatasetError, RecordError, CheckpointError, RecipeError, FileNotFoundError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
