"""Build a window data set from one or more database plans, on all cores."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from pipeline.util.version import __version__
from pipeline.data.dataset import DatasetWriter, count_table, set_counts
from pipeline.data.label_rules import PtbxlStatements
from pipeline.data.labels import LABEL_SETS, NO_CLASS_Y, parse_label
from pipeline.data.records import RecordError
from pipeline.sources import cinc, cinc2017, mitdb, nsrdb, ptbdb, ptbxl, recordings, synthetic
from pipeline.sources.base import Options, Plan, Result, Task, empty_result
from pipeline.signal.spec import PreprocessSpec
from pipeline.data.splits import balance_indices, ptbxl_fold_split, stratified_patient_split

SOURCES = {m.NAME: m for m in (cinc, cinc2017, mitdb, nsrdb, ptbdb, ptbxl, recordings, synthetic)}
SHOW_IDS = 5


class BuildError(RuntimeError):
    """A data set that cannot be built as asked; nothing is written."""


@dataclass
class BuildConfig:
    out: Path
    label_set: str
    spec: PreprocessSpec
    jobs: int = 0  # 0: every core
    balance: bool = False
    seed: int = 13
    skip_bad_records: bool = False
    strict_files: bool = False
    progress: bool = True
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class MultiDirPlan(Plan):
    """One database read from several directories: each record once, the first directory that has it wins."""

    record_dir: dict[str, str] = field(default_factory=dict)  # record id -> directory it is read from
    directories: list[dict[str, Any]] = field(default_factory=list)  # per directory: counts, duplicates, metadata hashes
    duplicates: list[str] = field(default_factory=list)  # record ids on disk in more than one directory


@dataclass(frozen=True)
class _PtbxlRow:
    patient_id: str
    strat_fold: int
    scp_codes: dict[str, float]
    label: str | None
    present: bool


def _ptbxl_rows(root: Path, mode: str, rate: int, assume_sinus: bool, max_records: int, ectopic: bool) -> dict[int, _PtbxlRow]:
    """Every metadata row of one PTB-XL directory with its label under `mode` and whether its record is on disk."""
    statements = PtbxlStatements.read(root / ptbxl.STATEMENTS_CSV)
    table = ptbxl.read_metadata(root)
    if max_records:
        table = table.head(max_records)
    column = ptbxl.RATES[rate]
    columns = [c for c in table.columns if c in (*ptbxl.REQUIRED_COLUMNS, column)]
    rows: dict[int, _PtbxlRow] = {}
    for values in zip(*(table[c].tolist() for c in columns)):
        ecg, patient, codes, fold, filename = ptbxl._row_fields(dict(zip(columns, values)), column, root / ptbxl.DATABASE_CSV)
        label = ptbxl.record_label(statements, codes, mode, assume_sinus, ectopic)
        rows[ecg] = _PtbxlRow(patient, fold, codes, label, os.path.exists(f"{root}/{filename}.hea"))
    return rows


def ptbxl_dirs_plan(
    roots: list[Path], mode: str, rate: int = 100, assume_sinus: bool = True, max_records: int = 0, ectopic: bool = False
) -> MultiDirPlan:
    """PTB-XL from one or more directories (e.g. ptbxl/ then ptbxl_derived/).

    Each ecg_id is read once, from the first directory that holds its record; the others' copies
    are counted as duplicates. A directory with no record on disk is an error, and so are
    metadata that disagree between directories (patient_id, strat_fold, scp_codes, or the label
    the mode derives with each directory's scp_statements.csv) for an ecg_id in use.
    """
    roots = [Path(r) for r in roots]
    if not roots:
        raise BuildError("no PTB-XL directory given")
    seen: dict[Path, Path] = {}
    for r in roots:
        if not r.is_dir():
            raise BuildError(f"{r}: no such PTB-XL directory")
        if r.resolve() in seen:
            raise BuildError(f"{r}: PTB-XL directory given twice (also as {seen[r.resolve()]})")
        seen[r.resolve()] = r
    plans = [ptbxl.plan(r, mode, rate, assume_sinus, max_records, ectopic) for r in roots]
    rows = [_ptbxl_rows(r, mode, rate, assume_sinus, max_records, ectopic) for r in roots]
    for r, table in zip(roots, rows):
        if not any(row.present for row in table.values()):
            limit = f" among the first {max_records} rows (--max-records)" if max_records else ""
            raise BuildError(
                f"{r}: no PTB-XL record on disk{limit}: none of the {len(table)} rows of {ptbxl.DATABASE_CSV} "
                f"has its {ptbxl.RATES[rate]} header (.hea) under {r}"
            )
    _check_ptbxl_agreement(roots, rows, mode)
    owner: dict[int, int] = {}  # ecg_id -> index of the directory it is read from
    copies: dict[int, list[int]] = {}
    for i, table in enumerate(rows):
        for ecg, row in table.items():
            if row.present:
                owner.setdefault(ecg, i)
                copies.setdefault(ecg, []).append(i)
    tasks = sorted(
        (t for i, p in enumerate(plans) for t in p.tasks if owner.get(int(t.record_id.split(":")[1])) == i),
        key=lambda t: int(t.record_id.split(":")[1]),
    )
    task_ids = {t.record_id for t in tasks}
    missing = sorted({m for p in plans for m in p.missing if f"{ptbxl.NAME}:{m}" not in task_ids}, key=int)
    excluded = {ecg for table in rows for ecg, row in table.items() if row.label is None}
    duplicates = sorted(e for e, c in copies.items() if len(c) > 1)
    directories = []
    for i, (r, p) in enumerate(zip(roots, plans)):
        skipped = sorted(e for e, c in copies.items() if i in c and c[0] != i)
        directories.append({
            "path": str(r.resolve()),
            "records_on_disk": sum(row.present for row in rows[i].values()),
            "records_used": sum(1 for t in tasks if owner[int(t.record_id.split(":")[1])] == i),
            "duplicates_skipped": {"count": len(skipped), "ecg_ids": skipped},
            "metadata_files": p.extra_files,
        })
    return MultiDirPlan(
        ptbxl.NAME,
        tasks,
        missing=missing,
        excluded=len(excluded),
        extra_files=plans[0].extra_files,
        record_dir={t.record_id: str(roots[owner[int(t.record_id.split(":")[1])]].resolve()) for t in tasks},
        directories=directories,
        duplicates=[f"{ptbxl.NAME}:{e}" for e in duplicates],
    )


def _check_ptbxl_agreement(roots: list[Path], rows: list[dict[int, _PtbxlRow]], mode: str) -> None:
    """Refuse an ecg_id in use whose metadata differ between directories; the error names the id and field."""
    if len(roots) < 2:
        return
    in_use = {e for table in rows for e, row in table.items() if row.present}
    for ecg in sorted(in_use):
        listed = [(r, table[ecg]) for r, table in zip(roots, rows) if ecg in table]
        (r0, a), rest = listed[0], listed[1:]
        for r1, b in rest:
            for name, va, vb in (
                ("patient_id", a.patient_id, b.patient_id),
                ("strat_fold", a.strat_fold, b.strat_fold),
                ("scp_codes", a.scp_codes, b.scp_codes),
                (f"label (mode {mode}, from each directory's {ptbxl.STATEMENTS_CSV})", a.label, b.label),
            ):
                if va != vb:
                    raise BuildError(
                        f"PTB-XL ecg_id {ecg}: {name} differs between directories: {va!r} in {r0} vs {vb!r} in {r1} "
                        f"(the metadata of every --ptbxl-dir must agree)"
                    )


def _process(job: tuple[Task, Options]) -> Result:
    task, opts = job
    try:
        return SOURCES[task.db].process(task, opts)
    except RecordError as exc:
        return empty_result(task, error=str(exc))


def _process_chunk(chunk: list[tuple[Task, Options]]) -> list[Result]:
    return [_process(job) for job in chunk]


def _results(jobs: list[tuple[Task, Options]], n_jobs: int) -> Iterator[Result]:
    """Results in task order; at most `3 * n_jobs` chunks in flight so memory stays bounded."""
    if n_jobs == 1:
        yield from map(_process, jobs)
        return
    # Chunks big enough that workers never wait on the parent, small enough to bound memory.
    chunk = min(64, max(1, len(jobs) // (8 * n_jobs)))
    chunks = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        pending: deque[Future[list[Result]]] = deque()
        for c in chunks:
            pending.append(pool.submit(_process_chunk, c))
            if len(pending) >= 3 * n_jobs:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _report_missing(plans: Iterable[Plan], strict: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in plans:
        if not p.missing:
            continue
        msg = f"{p.db}: {len(p.missing)} record(s) listed but absent on disk (first: {', '.join(p.missing[:SHOW_IDS])})"
        if strict:
            raise BuildError(msg + "; --strict-files makes this an error")
        warnings.warn(msg, stacklevel=2)
        out[p.db] = {"count": len(p.missing), "first": p.missing[:SHOW_IDS]}
    return out


def _source_meta(p: Plan, records: dict[str, dict[str, str]], paths: dict[str, str], written: set[str], info: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A source's entry in dataset.json (with per-record facts of plan and reading); a multi-directory plan adds where each record came from."""
    out: dict[str, Any] = {"metadata_files": p.extra_files, "records": records, "record_paths": paths}
    out.update({k: {rid: v for rid, v in table.items() if rid in written} for k, table in p.record_info.items()})
    out.update(info)
    if isinstance(p, MultiDirPlan):
        out["directories"] = p.directories
        out["duplicates"] = {"count": len(p.duplicates), "ids": p.duplicates, "rule": "each id once; the first directory given wins"}
        out["record_dirs"] = {rid: d for rid, d in p.record_dir.items() if rid in written}
    return out


def build(plans: list[tuple[Plan, Options]], cfg: BuildConfig) -> Path:
    """Read every planned record, window, split, check, balance and write `cfg.out` atomically."""
    label_names = LABEL_SETS[cfg.label_set]
    missing = _report_missing((p for p, _ in plans), cfg.strict_files)
    jobs = [(t, o) for p, o in plans for t in p.tasks]
    if not jobs:
        raise BuildError("no records to read: check the data directory and the label mode")
    n_jobs = cfg.jobs or os.cpu_count() or 1
    bad: list[str] = []
    excluded: Counter[str] = Counter()
    lead_usage: Counter[str] = Counter()
    records: dict[str, dict[str, dict[str, str]]] = {p.db: {} for p, _ in plans}
    paths: dict[str, dict[str, str]] = {p.db: {} for p, _ in plans}
    info: dict[str, dict[str, dict[str, Any]]] = {p.db: {} for p, _ in plans}
    written: set[str] = set()
    with DatasetWriter(cfg.out, cfg.spec) as writer:
        bar = tqdm(total=len(jobs), desc="records", unit="rec", disable=None if cfg.progress else True)
        for res in _results(jobs, n_jobs):
            bar.update()
            if res.error:
                if not cfg.skip_bad_records:
                    raise BuildError(f"{res.error} (use --skip-bad-records to leave such records out)")
                bad.append(res.error)
                continue
            if res.excluded:
                excluded[f"{res.task.db}: {res.excluded}"] += 1
                continue
            try:
                parsed = np.array([parse_label(lab, label_names) for lab in res.labels], dtype=np.int64).reshape(-1, 2)
            except ValueError as exc:
                raise BuildError(f"record {res.task.record_id}: {exc} (the {cfg.label_set} set is {label_names})") from None
            y, targets = parsed[:, 0], parsed[:, 1]
            writer.add(res.X, y, res.task.patient, res.task.record_id, res.starts, res.task.split, targets)
            lead_usage.update({"+".join(res.leads): len(y)})
            records[res.task.db][res.task.record_id] = res.files
            for key, value in {**res.info, "record_leads": res.leads}.items():
                info[res.task.db].setdefault(key, {})[res.task.record_id] = value
            paths[res.task.db][res.task.record_id] = str(Path(res.task.path).resolve())
            written.add(res.task.record_id)
        bar.close()
        if bad:
            warnings.warn(f"skipped {len(bad)} bad record(s): " + "; ".join(bad[:SHOW_IDS]), stacklevel=2)
        cols = writer.columns()
        if len(cols["y"]) == 0:
            raise BuildError("no windows collected: every record was missing, excluded or too short")
        todo = cols["split"] == ""
        if todo.any():
            if np.any(cols["y"][todo] == NO_CLASS_Y):
                raise BuildError("windows of no class need a split from their source (a stratified split needs a class)")
            cols["split"][todo] = stratified_patient_split(cols["patient"][todo], cols["y"][todo], seed=cfg.seed)
        keep = np.arange(len(cols["y"]))
        if cfg.balance:  # classes down-sampled per split; windows of no class all kept
            no_class = np.flatnonzero(cols["y"] == NO_CLASS_Y)
            with_class = np.flatnonzero(cols["y"] != NO_CLASS_Y)
            keep = np.sort(np.concatenate([with_class[balance_indices(cols["y"][with_class], cols["split"][with_class], cfg.seed)], no_class]))
        table = count_table(cols["y"][keep], cols["patient"][keep], cols["split"][keep], label_names)
        meta = {
            "label_set": cfg.label_set,
            "label_names": list(label_names),
            "leads": (lead_usage.most_common(1)[0][0].split("+") if lead_usage else []),
            "lead_usage": dict(lead_usage),
            "counts": table,
            "label_sets": set_counts(cols["y"][keep], cols["targets"][keep], cols["split"][keep], label_names),
            "balanced": cfg.balance,
            "seed": cfg.seed,
            "sources": {p.db: _source_meta(p, records[p.db], paths[p.db], written, info[p.db]) for p, _ in plans},
            "skipped": {"missing": missing, "bad_records": bad, "excluded_by_label_rule": dict(excluded)},
            "excluded_at_plan": {p.db: p.excluded for p, _ in plans},
            "build_args": cfg.args,
            "ecg_edge_version": __version__,
        }
        return writer.finish(cols, keep, meta)


def cinc_plans(sources: list[tuple[str, Path]], mode: str, rate: int = 100, ectopic: bool = False) -> list[MultiDirPlan]:
    """`prepare cinc`: challenge-layout directories ("cinc") and PTB-XL directories ("ptbxl"), in the order given.

    PTB-XL metadata give the challenge's HR records (HRxxxxx = ecg_id xxxxx) their patient and strat_fold
    (the first directory listing an ecg_id); a PTB-XL directory with records on disk also contributes
    them (at `rate`), one with none only its metadata. Each record id once: the first directory given
    wins, among the challenge directories and between the two kinds alike.
    """
    sources = [(kind, Path(p)) for kind, p in sources]
    roots = [p for kind, p in sources if kind == cinc.NAME]
    if not roots:
        raise BuildError("no challenge directory given (--source-dir)")
    for kind, p in sources:
        if not p.is_dir():
            raise BuildError(f"{p}: no such {'PTB-XL' if kind == ptbxl.NAME else 'challenge'} directory")
    if len({p.resolve() for _, p in sources}) < len(sources):
        raise BuildError("a directory is given twice (--source-dir / --ptbxl-dir)")
    position = {str(p.resolve()): i for i, (_, p) in enumerate(sources)}
    meta_roots = [p for kind, p in sources if kind == ptbxl.NAME]
    ids: dict[int, tuple[str, str]] = {}
    with_records = []
    for r in meta_roots:
        rows = _ptbxl_rows(r, mode, rate, True, 0, ectopic)
        for ecg, row in rows.items():
            ids.setdefault(ecg, (row.patient_id, ptbxl_fold_split(row.strat_fold)))
        if any(row.present for row in rows.values()):
            with_records.append(r)
    plans: list[MultiDirPlan] = []
    if with_records:
        plans.append(ptbxl_dirs_plan(with_records, mode, rate, True, 0, ectopic))
    per_dir = [cinc.plan(r, ids if meta_roots else None) for r in roots]
    for r, p in zip(roots, per_dir):
        if not p.tasks:
            listed = " listed in RECORDS" if (r / "RECORDS").exists() else ""
            raise BuildError(f"{r}: no record in the challenge layout (no .hea file{listed} found)")
    plans.append(MultiDirPlan(
        cinc.NAME, [t for p in per_dir for t in p.tasks], missing=[m for p in per_dir for m in p.missing],
        directories=[{"path": str(r.resolve()), "records_on_disk": len(p.tasks), "duplicates_skipped": {"count": 0, "ids": []}}
                     for r, p in zip(roots, per_dir)],
    ))  # fmt: skip
    located = [(p, t, p.record_dir[t.record_id]) for p in plans[:-1] for t in p.tasks]
    located += [(plans[-1], t, str(r.resolve())) for r, p in zip(roots, per_dir) for t in p.tasks]
    copies = Counter(t.record_id for _, t, _ in located)
    owner: dict[str, tuple[Task, str]] = {}  # record id -> the task and directory it is read from
    for _, t, d in sorted(located, key=lambda item: position[item[2]]):  # stable: within a directory, the first listed
        owner.setdefault(t.record_id, (t, d))
    for plan in plans:
        mine = [(t, d) for p, t, d in located if p is plan]
        plan.tasks = [t for t, d in mine if owner[t.record_id] == (t, d)]
        plan.record_dir = {t.record_id: d for t, d in mine if owner[t.record_id] == (t, d)}
        plan.duplicates = sorted(set(plan.duplicates) | {t.record_id for t, _ in mine if copies[t.record_id] > 1}, key=_id_order)
        for entry in plan.directories:
            used = [t for t, d in mine if d == entry["path"] and owner[t.record_id] == (t, d)]
            entry["records_used"] = len(used)
            gone = [t.record_id for t, d in mine if d == entry["path"] and owner[t.record_id] != (t, d)]
            if plan.db == cinc.NAME:
                entry["duplicates_skipped"] = {"count": len(gone), "ids": gone}
            else:  # ptbxl_dirs_plan counted the copies among PTB-XL directories already
                ecg_ids = sorted(set(entry["duplicates_skipped"]["ecg_ids"]) | {int(r.split(":")[1]) for r in gone})
                entry["duplicates_skipped"] = {"count": len(ecg_ids), "ecg_ids": ecg_ids}
    return plans


def _id_order(record_id: str) -> tuple[str, int, str]:
    """Record ids by source, then number (ptbxl:9 before ptbxl:10), then name."""
    db, _, rest = record_id.partition(":")
    return (db, int(rest), "") if rest.isdigit() else (db, -1, rest)
