"""`ecg-pipeline` subcommands for models: models, train, distill, evaluate, predict."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path
from typing import Callable

from pipeline.models.checkpoint import load_checkpoint
from pipeline.data.dataset import load_dataset, write_json_atomic
from pipeline.inference.classifiers import Classifier, Single, TwoStage
from pipeline.training.train import TrainConfig, train
from pipeline.util.threads import add_threads_option, use_threads

AddFn = Callable[..., argparse.ArgumentParser]
SUBGROUPS_PRINTED = 15  # per label; metrics.json holds them all


def cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.models.architectures import models_table

    Console().print(models_table(in_leads=args.leads, n_classes=args.classes))
    return 0


def _config(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    values["model_kwargs"] = json.loads(args.model_kwargs) if args.model_kwargs else {}
    if args.lead:
        values["leads"] = args.lead
    return TrainConfig(**values)


def cmd_train(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    path = train(_config(args), args.data, args.out_dir, resume=args.resume, progress=not args.no_progress)
    print(f"best checkpoint: {path}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    path = train(_config(args), args.data, args.out_dir, teacher=args.teacher, resume=args.resume, progress=not args.no_progress)
    print(f"best student checkpoint: {path}")
    return 0


def classifier_from_args(args: argparse.Namespace) -> Classifier:
    if args.two_stage:
        return TwoStage(load_checkpoint(args.two_stage[0]), load_checkpoint(args.two_stage[1]))
    if not args.checkpoint:
        raise ValueError("give --checkpoint CKPT or --two-stage STAGE1 STAGE2")
    return Single(load_checkpoint(args.checkpoint))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pipeline.evaluation.evaluate import evaluate

    use_threads(args.threads)
    report = evaluate(
        classifier_from_args(args), load_dataset(args.data), Path(args.out_dir), args.split, args.bootstrap, args.seed, quality=not args.no_quality,
        input_lead=args.lead, partial_labels=args.partial_labels, subgroups=args.subgroups, record_level=args.record_level,
    )
    recall = ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in report["per_class_recall"].items())
    ci = report["ci95"]["balanced_accuracy"]
    print(f"{args.split}: {report['n_windows']} windows, {report['n_groups']} patients")
    print(f"recall: {recall}")
    pp = report["per_patient"]
    per = ", ".join(f"{k} {v:.3f} ({pp['groups_per_label'][k]})" for k, v in pp["group_mean_recall"].items() if v is not None)
    print(f"recall averaged over patients (patients): {per}")
    ci_text = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
    auc = f", macro AUC {report['macro_auc']:.3f}" if report["macro_auc"] is not None else ""
    print(f"balanced accuracy {report['balanced_accuracy']:.3f}{ci_text}{auc}")
    u = report["uncertain"]
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(u["uncertain_by_reason"].items())) or "none"
    quality = "quality rule applied" if u["quality_applied"] else f"quality rule {u['quality_note']}" if u["quality_note"] else "no quality rule in the checkpoint"
    print(f"uncertain {u['uncertain_share']:.1%} ({reasons}; confidence threshold {u['confidence_threshold']:.3f}, {quality})")
    if u["answered"] is not None and u["answered"]["balanced_accuracy"] is not None:
        print(f"answered windows: {u['answered']['n_windows']} ({u['coverage']:.1%}), balanced accuracy {u['answered']['balanced_accuracy']:.3f}")
    for label, subs in report.get("subgroups", {}).get("by_label", {}).items():
        for name, r in list(subs.items())[:SUBGROUPS_PRINTED]:  # the largest first
            other = ", ".join(f"{k} {v}" for k, v in r["predicted"].items() if k != label and v)
            print(f"  {label} {name}: {r['windows']} window{'s' if r['windows'] != 1 else ''}, recall {r['recall']:.2f}" + (f" (said {other})" if other else ""))
        if len(subs) > SUBGROUPS_PRINTED:
            print(f"  {label}: {len(subs) - SUBGROUPS_PRINTED} smaller subgroups in metrics.json")
    print_source_classes(report)
    out = Path(args.out_dir)
    plot = f", {out / 'subgroups.png'}" if "subgroups" in report else ""
    print(f"-> {out / 'metrics.json'}, {out / 'confusion_matrix.png'}, {out / 'coverage.json'}, {out / 'coverage.png'}{plot}")
    return 0


def print_source_classes(report: dict) -> None:
    """The no-class windows' uncertain share, record-level metrics and the answers per source class (CinC 2017)."""
    if "no_class" in report:
        n = report["no_class"]
        print(f"windows of no class (noisy): {n['windows']}, uncertain {n['uncertain_share']:.1%}")
    if "record_level" in report:
        r = report["record_level"]
        recall = ", ".join(f"{k} {v:.3f}" for k, v in r["per_class_recall"].items() if v is not None)
        print(f"records: {r['records']}, recall {recall}, balanced accuracy {r['balanced_accuracy']:.3f}, uncertain {r['uncertain_share']:.1%}")
    for level, classes in report.get("by_source_class", {}).items():
        for c, row in classes.items():
            said = ", ".join(f"{k} {v:.2f}" for k, v in row["top_label_share"].items() if v)
            print(f"  {level} of source class {c}: {row['n']}, top label {said}; uncertain {row['uncertain_share']:.2f}")


def cmd_learning_curve(args: argparse.Namespace) -> int:
    from pipeline.training.learning_curve import CURVE_FILE, CURVE_PLOT, learning_curve

    use_threads(args.threads)
    r = learning_curve(_config(args), args.data, args.eval_data or args.data, args.out_dir, args.fractions, args.eval_lead,
                       args.predict_at, args.bootstrap, progress=not args.no_progress)  # fmt: skip
    for p in r["points"]:
        ci = p["ci95"]
        print(f"{p['fraction']:>5.0%} of train: {p['train_windows']:>6} windows  balanced accuracy {p['balanced_accuracy']:.3f} ({ci[0]:.3f}-{ci[1]:.3f})")
    print(f"fit: {r['fit']['slope_per_decade']:+.3f} per decade of training windows")
    if "prediction" in r:
        print(f"extrapolated at {r['prediction']['train_windows']:,} windows: {r['prediction']['balanced_accuracy']:.3f} (a straight line in log windows; see README)")
    print(f"-> {args.out_dir / CURVE_FILE}, {args.out_dir / CURVE_PLOT}")
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from pipeline.evaluation.agreement import version_agreement

    r = version_agreement(classifier_from_args(args), load_dataset(args.data[0]), load_dataset(args.data[1]))
    print(f"{r['windows']} matched windows of {r['records']} records: top-1 agreement {r['top1_agreement']:.1%}, "
          f"mean |dp| {r['mean_abs_probability_diff']:.3f} (max {r['max_abs_probability_diff']:.3f}); "
          f"balanced accuracy {r['balanced_accuracy_a']:.3f} on {args.data[0]}, {r['balanced_accuracy_b']:.3f} on {args.data[1]}")  # fmt: skip
    if args.out:
        write_json_atomic(args.out, r)
        print(f"-> {args.out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from pipeline.inference.predict import predict_file

    result = predict_file(classifier_from_args(args), args.input, args.input_rate, args.lead_name, args.hop_sec, args.input_units, args.adc_bits)
    names = result["label_names"]
    print(f"{'start s':>8}  {'label':<11}" + "".join(f"{n:>12}" for n in names) + "  reason")
    for w in result["windows"]:
        print(f"{w['start_s']:8.1f}  {w['label']:<11}" + "".join(f"{w['probabilities'][n]:12.3f}" for n in names) + f"  {w['reason'] or ''}")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(result["uncertain_by_reason"].items())) or "none"
    quality = "quality rule applied" if result["quality_applied"] else "no quality rule in the checkpoint"
    print(f"uncertain {result['uncertain_share']:.1%} of {len(result['windows'])} windows ({reasons}; "
          f"confidence threshold {result['confidence_threshold']:.3f}, {quality})")
    if args.out:
        write_json_atomic(Path(args.out), result)
        print(f"-> {args.out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from pipeline.training.calibrate import calibrate

    r = calibrate(args.checkpoint, args.data, args.out, args.split)
    print(f"logit offsets {[round(b, 2) for b in r['logit_bias']]}: {args.split} balanced accuracy "
          f"{r['balanced_accuracy_before']:.3f} -> {r['balanced_accuracy_after']:.3f}\n-> {args.out}")
    return 0


def _train_options(p: argparse.ArgumentParser, teacher: bool) -> None:
    d = TrainConfig()
    p.add_argument("--data", type=Path, required=True, help="data set directory (ecg-pipeline prepare)")
    p.add_argument("--out-dir", type=Path, required=True, help="writes checkpoint.pt, last.pt, history.json, learning_curve.png")
    if teacher:
        p.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint (e.g. 12-lead)")
    p.add_argument("--model", default="mcu" if teacher else d.model, help="model name (see `ecg-pipeline models`)")
    p.add_argument("--model-kwargs", default="", help='JSON constructor arguments, e.g. \'{"stage_channels": [16, 32, 48]}\'')
    p.add_argument("--lead", nargs="+", help="leads to use (default: all of the data set" + ("; the student's, e.g. II)" if teacher else ")"))
    if not teacher:
        p.add_argument("--lead-pool", nargs="+", metavar="LEAD",
                       help="train a single-lead model (its --lead) on windows of any of these leads, e.g. I II III aVF")  # fmt: skip
        p.add_argument("--polarity-flip", type=float, default=d.polarity_flip, help="chance of inverting a training window (swapped electrodes)")
        p.add_argument("--frontal-angle", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="placement: train a single-lead model on frontal-plane leads at angles drawn from LOW..HIGH degrees "
                            "(I = 0, II = 60, aVF = 90), built from the data set's leads I and II")  # fmt: skip
        p.add_argument("--train-fraction", type=float, default=d.train_fraction,
                       help="train on this share of the train split's patients, drawn per label (learning curves; default 1)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d.augment,
                   help=f"AD8232 signal-model augmentation: mains, EMG, wander, motion, amplitude, shift (default {'on' if d.augment else 'off'})")  # fmt: skip
    p.add_argument("--augment-strength", type=float, default=d.augment_strength)
    p.add_argument("--mixup", type=float, default=d.mixup, help="mixup alpha (0: off)")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--noise-weight", type=float, default=d.noise_weight,
                   help="windows of no class (CinC 2017's noisy recordings) train toward equal probabilities with this weight, so the "
                        "confidence threshold answers them uncertain (0: left out of training)")  # fmt: skip
    p.add_argument("--balance-by", choices=("label", "source-label"), default=d.balance_by,
                   help="the balanced sampler makes each label equally likely, or each (database, label) pair, so that no database tells the label")
    p.add_argument("--balanced-sampler", action=argparse.BooleanOptionalAction, default=d.balanced_sampler,
                   help=f"class-balanced sampling with replacement (default {'on' if d.balanced_sampler else 'off'})")  # fmt: skip
    p.add_argument("--no-class-weights", dest="class_weights", action="store_false", help="unweighted loss without the balanced sampler")
    p.add_argument("--scheduler", choices=("none", "cosine"), default=d.scheduler)
    p.add_argument("--min-lr", type=float, default=d.min_lr)
    p.add_argument("--patience", type=int, default=d.patience, help="early stop after this many epochs without val improvement (0: never)")
    p.add_argument("--ema", type=float, default=d.ema, help="keep an exponential moving average of the weights with this decay, e.g. 0.99 (0: off)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--target-coverage", type=float, default=d.target_coverage,
                   help="after training, the confidence threshold keeps this share of validation windows answered (default 0.9)")
    if teacher:
        p.add_argument("--temperature", type=float, default=d.temperature)
        p.add_argument("--alpha", type=float, default=d.alpha, help="weight of the hard-label loss")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint's weights (same model, labels, preprocessing and lead count), "
                        "e.g. a PTB-XL model on your own recordings (prepare recordings)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt")
    add_threads_option(p)
    p.add_argument("--no-progress", action="store_true")


def _classifier_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--checkpoint", type=Path)
    g.add_argument("--two-stage", nargs=2, type=Path, metavar=("STAGE1", "STAGE2"))


def add_model_commands(add: AddFn) -> None:
    """Register the model subcommands with `add(name, func, help)`."""
    p = add("models", cmd_models, "list every model: parameters, MACs per window, int8 weight bytes")
    p.add_argument("--leads", type=int, default=1)
    p.add_argument("--classes", type=int, default=3)
    _train_options(add("train", cmd_train, "train a model on a data set (runs under torchrun for DDP)"), teacher=False)
    _train_options(add("distill", cmd_distill, "distil a (12-lead) teacher into a single-lead student"), teacher=True)

    p = add("learning-curve", cmd_learning_curve, "test balanced accuracy vs training windows (train on shares of the train split)")
    _train_options(p, teacher=False)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="shares of the train split's patients")
    p.add_argument("--eval-data", type=Path, help="data set whose test split scores every run (default --data)")
    p.add_argument("--eval-lead", help="lead of --eval-data fed to the single-lead model (default: the model's)")
    p.add_argument("--predict-at", type=int, help="also read the fitted line off at this many training windows")
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples of patients per point")

    p = add("agreement", cmd_agreement, "one model on two versions of the same records (matched by record id and start)")
    _classifier_options(p)
    p.add_argument("--data", type=Path, nargs=2, required=True, metavar=("A", "B"), help="two data sets holding the same records")
    p.add_argument("--out", type=Path, help="also write the report as JSON")

    p = add("calibrate", cmd_calibrate, "fit per-class logit offsets on the validation split and fold them into the model")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="calibrated checkpoint to write")
    p.add_argument("--split", choices=("val", "train"), default="val")

    p = add("evaluate", cmd_evaluate, "metrics on a data set split: recall/precision/F1, balanced accuracy, AUC, bootstrap CIs")
    _classifier_options(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="test",
                   help="split to score; all: every window (an external data set the model never saw, e.g. all of MIT-BIH)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of patients")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-quality", action="store_true", help="leave the signal-quality rule out (it re-reads the split's source records)")
    p.add_argument("--lead", help="feed this lead of the data set to a single-lead model, whatever lead it declares (placement checks, e.g. I)")
    p.add_argument("--subgroups", action="store_true",
                   help="also recall per finding: PTB-XL MI by territory (IMI, AMI, LMI, PMI) and ARRHYTHMIA by rhythm code; "
                        "MIT-BIH ARRHYTHMIA by rhythm, else by its non-normal beats (subgroups.png)")
    p.add_argument("--record-level", action="store_true",
                   help="also per record: the mean window probability over all its windows (short recordings, e.g. CinC 2017)")
    p.add_argument("--partial-labels", action="store_true",
                   help="external checks: the split may lack some labels (e.g. MIT-BIH: NORMAL and ARRHYTHMIA only); recall of those present")  # fmt: skip
    add_threads_option(p)

    p = add("predict", cmd_predict, "label every window of a CSV, NPY or WFDB signal")
    _classifier_options(p)
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--input-rate", type=float, help="sampling rate of the input in Hz (WFDB records carry their own)")
    p.add_argument("--lead-name", help="CSV column or WFDB lead to read")
    p.add_argument("--hop-sec", type=float, help="hop between windows (default: the model's data set hop)")
    p.add_argument("--input-units", choices=("mv", "counts"), default="mv",
                   help="mv: a signal at the electrodes (judged through the AD8232 board model); counts: raw ADC counts")
    p.add_argument("--adc-bits", type=int, default=12, help="ADC width for --input-units counts (default 12)")
    p.add_argument("--out", type=Path, help="also write the result as JSON")
