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

from . import __version__
from .dataset import DatasetWriter, count_table
from .labels import LABEL_SETS
from .records import RecordError
from .sources import mitdb, nsrdb, ptbdb, ptbxl, synthetic
from .sources.base import Options, Plan, Result, Task, empty_result
from .spec import PreprocessSpec
from .splits import balance_indices, stratified_patient_split

SOURCES = {m.NAME: m for m in (mitdb, nsrdb, ptbdb, ptbxl, synthetic)}
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
    with DatasetWriter(cfg.out, cfg.spec) as writer:
        bar = tqdm(total=len(jobs), desc="records", unit="rec", disable=not cfg.progress)
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
            unknown = set(res.labels) - set(label_names)
            if unknown:
                raise BuildError(f"record {res.task.record_id}: label(s) {sorted(unknown)} are not in the {cfg.label_set} set {label_names}")
            y = np.array([label_names.index(lab) for lab in res.labels], dtype=np.int64)
            writer.add(res.X, y, res.task.patient, res.task.record_id, res.starts, res.task.split)
            lead_usage.update({"+".join(res.leads): len(y)})
            records[res.task.db][res.task.record_id] = res.files
            paths[res.task.db][res.task.record_id] = str(Path(res.task.path).resolve())
        bar.close()
        if bad:
            warnings.warn(f"skipped {len(bad)} bad record(s): " + "; ".join(bad[:SHOW_IDS]), stacklevel=2)
        cols = writer.columns()
        if len(cols["y"]) == 0:
            raise BuildError("no windows collected: every record was missing, excluded or too short")
        todo = cols["split"] == ""
        if todo.any():
            cols["split"][todo] = stratified_patient_split(cols["patient"][todo], cols["y"][todo], seed=cfg.seed)
        keep = balance_indices(cols["y"], cols["split"], cfg.seed) if cfg.balance else np.arange(len(cols["y"]))
        table = count_table(cols["y"][keep], cols["patient"][keep], cols["split"][keep], label_names)
        meta = {
            "label_set": cfg.label_set,
            "label_names": list(label_names),
            "leads": (lead_usage.most_common(1)[0][0].split("+") if lead_usage else []),
            "lead_usage": dict(lead_usage),
            "counts": table,
            "balanced": cfg.balance,
            "seed": cfg.seed,
            "sources": {p.db: {"metadata_files": p.extra_files, "records": records[p.db], "record_paths": paths[p.db]} for p, _ in plans},
            "skipped": {"missing": missing, "bad_records": bad, "excluded_by_label_rule": dict(excluded)},
            "excluded_at_plan": {p.db: p.excluded for p, _ in plans},
            "build_args": cfg.args,
            "ecg_edge_version": __version__,
        }
        return writer.finish(cols, keep, meta)
