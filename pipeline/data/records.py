"""Reading one WFDB record with `wfdb`, turning every failure into an error that names it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import wfdb

ALL_LEADS = "all"


class RecordError(ValueError):
    """A record that cannot be used; the message names the record and what is wrong."""

    def __init__(self, record: str | Path, reason: str) -> None:
        self.record = str(record)
        self.reason = reason
        super().__init__(f"record {self.record}: {reason}")


@dataclass
class Record:
    """One record's chosen leads as `(leads, samples)` float64 in physical units."""

    name: str
    signal: np.ndarray
    fs: float
    leads: list[str]
    comments: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def pick_leads(available: Sequence[str], wanted: Sequence[str] | str, record: str, fallback: bool) -> list[int]:
    """Indices of the wanted leads (case-insensitive).

    `wanted` is `"all"`, or a list of names; with `fallback` the list is an order of
    preference and the first present lead is used, otherwise every name must exist.
    """
    if wanted == ALL_LEADS:
        return list(range(len(available)))
    index = {name.upper(): i for i, name in enumerate(available)}
    if fallback:
        for name in wanted:
            if name.upper() in index:
                return [index[name.upper()]]
        raise RecordError(record, f"none of the leads {list(wanted)} is present (has {list(available)})")
    missing = [name for name in wanted if name.upper() not in index]
    if missing:
        raise RecordError(record, f"unknown lead(s) {missing} (has {list(available)})")
    return [index[name.upper()] for name in wanted]


def _record_files(header_path: Path, rec: wfdb.Record) -> list[Path]:
    names = {header_path.name}
    names.update(f for f in (rec.file_name or []) if f)
    return [header_path.parent / n for n in sorted(names)]


def _read_present_files(path: Path, name: str, leads: Sequence[str] | str, fallback: bool, exc: FileNotFoundError) -> wfdb.Record:
    """The signals whose files exist, when a header names a signal file that is absent (ptbdb's Frank
    leads in a `.xyz` file): allowed only if every wanted lead (with `fallback`, one of them) is in a
    file that exists; otherwise a RecordError naming the lead(s) and the missing file(s)."""
    missing_file = f"signal file {Path(exc.filename or '?').name} is missing"
    try:
        header = wfdb.rdheader(str(path))
    except Exception:  # noqa: BLE001 - the header is what failed: report the first error
        raise RecordError(name, missing_file) from exc
    files = list(header.file_name or [])
    names = list(header.sig_name or [])
    absent = sorted({f for f in files if not (path.parent / f).exists()})
    if not absent:
        raise RecordError(name, missing_file) from exc
    if leads == ALL_LEADS:
        raise RecordError(name, f"signal file(s) {absent} are missing (they hold leads {[n for n, f in zip(names, files) if f in absent]})") from exc
    chosen = pick_leads(names, leads, name, fallback)  # unknown leads: the usual error
    if fallback:  # the first wanted lead whose file exists, else the first wanted (reported below)
        index = {n.upper(): i for i, n in enumerate(names)}
        readable = [index[w.upper()] for w in leads if w.upper() in index and files[index[w.upper()]] not in absent]
        chosen = readable[:1] or chosen
    lost = [i for i in chosen if files[i] in absent]
    if lost:
        raise RecordError(name, "; ".join(f"signal file {files[i]} is missing (it holds lead {names[i]})" for i in lost)) from exc
    keep = [i for i, f in enumerate(files) if f not in absent]
    try:
        return wfdb.rdrecord(str(path), physical=True, channels=keep)
    except FileNotFoundError as again:
        raise RecordError(name, f"signal file {Path(again.filename or '?').name} is missing") from again
    except Exception as again:  # noqa: BLE001 - wfdb raises several types
        raise RecordError(name, f"signal file is truncated or unreadable ({again})") from again


def read_record(
    path: Path,
    leads: Sequence[str] | str,
    *,
    fallback: bool = False,
    expected_fs: Sequence[float] | None = None,
    hash_files: bool = True,
) -> Record:
    """Read `path` (no extension) and return the chosen leads, checked for use.

    Raises RecordError for a missing header, unreadable or truncated signal file,
    unknown lead, a rate not in `expected_fs`, NaN samples, or a flat signal.
    """
    path = Path(path)
    name = str(path)
    header = path.parent / (path.name + ".hea")
    if not header.exists():
        raise RecordError(name, f"header file {header.name} is missing")
    try:
        # One rdrecord call parses the header once (wfdb's header parser dominates the cost).
        rec = wfdb.rdrecord(str(path), physical=True)
    except FileNotFoundError as exc:
        rec = _read_present_files(path, name, leads, fallback, exc)
    except ValueError as exc:
        raise RecordError(name, f"signal file is truncated or unreadable ({exc})") from exc
    except Exception as exc:  # wfdb raises several types for malformed headers
        raise RecordError(name, f"malformed header or signal: {exc}") from exc
    if expected_fs is not None and float(rec.fs) not in {float(f) for f in expected_fs}:
        raise RecordError(name, f"unexpected sampling rate {rec.fs} Hz (expected {sorted(set(expected_fs))})")
    idx = pick_leads(rec.sig_name or [], leads, name, fallback)
    sig = np.asarray(rec.p_signal[:, idx], dtype=np.float64).T
    if sig.shape[1] != rec.sig_len:
        raise RecordError(name, f"signal file is truncated: {sig.shape[1]} of {rec.sig_len} samples")
    lead_names = [rec.sig_name[i] for i in idx]
    bad = np.isnan(sig).any(axis=1)
    if bad.any():
        raise RecordError(name, f"NaN samples in lead(s) {[n for n, b in zip(lead_names, bad) if b]}")
    flat = np.ptp(sig, axis=1) == 0 if sig.shape[1] else np.ones(len(idx), bool)
    if flat.any():
        raise RecordError(name, f"flat signal in lead(s) {[n for n, f in zip(lead_names, flat) if f]}")
    files = {p.name: sha256_file(p) for p in _record_files(header, rec)} if hash_files else {}
    return Record(name=name, signal=sig, fs=float(rec.fs), leads=lead_names, comments=list(rec.comments or []), files=files)


def read_annotation_aux(path: Path, extension: str) -> list[str]:
    """The aux notes of an annotation file, aligned with `read_annotation`'s samples and symbols."""
    try:
        return [str(a or "") for a in wfdb.rdann(str(path), extension).aux_note]
    except Exception as exc:
        raise RecordError(str(path), f"annotation file {path.name}.{extension} is unreadable ({exc})") from exc


def read_annotation(path: Path, extension: str) -> tuple[np.ndarray, list[str], float]:
    """Annotation sample positions, symbols and rate, with a RecordError if absent or broken."""
    ann_file = path.parent / f"{path.name}.{extension}"
    if not ann_file.exists():
        raise RecordError(str(path), f"annotation file {ann_file.name} is missing")
    try:
        ann = wfdb.rdann(str(path), extension)
    except Exception as exc:
        raise RecordError(str(path), f"annotation file {ann_file.name} is unreadable ({exc})") from exc
    return np.asarray(ann.sample, dtype=np.int64), list(ann.symbol), float(ann.fs or 0)
