"""The on-disk window data set: written atomically, read back with one call.

Layout of a data set directory:
    dataset.json   label names, PreprocessSpec, leads, counts, sources and their hashes
    X.npy          (N, leads, window) float32, read memory-mapped
    y.npy          (N,) int64 label index (-1: a window of no class, e.g. CinC 2017's "too noisy")
    targets.npy    (N,) int64 label-set bit masks, written only when some window's set is not just its
                   label (partial labels, pipeline.data.labels); absent: each window's set is {y}
    patient.npy, record.npy, split.npy   (N,) unicode
    start.npy      (N,) int64 start sample at the spec's rate
Windows stream to a scratch file while a data set is built, so neither building nor
reading needs the whole signal array in memory twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.util.atomic import write_text_atomic
from pipeline.data.labels import NO_CLASS_Y, mask_names, one_hot_masks
from pipeline.signal.spec import PreprocessSpec
from pipeline.data.splits import SPLITS, check_split

FORMAT = "ecg-edge-dataset/1"
META_FILE = "dataset.json"
ARRAYS = ("y", "patient", "record", "start", "split")
TARGETS = "targets"  # optional: label-set masks
_COPY_ROWS_BYTES = 64 << 20
_NPY_HEADER_BYTES = 128  # reserved up front so windows can stream into X.npy before N is known


def npy_header(shape: tuple[int, ...]) -> bytes:
    """A version-1.0 .npy header for little-endian float32 of `shape`, exactly 128 bytes long."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    body = text.ljust(_NPY_HEADER_BYTES - 11) + "\n"
    if len(body) != _NPY_HEADER_BYTES - 10:
        raise DatasetError(f"shape {shape} does not fit a {_NPY_HEADER_BYTES}-byte .npy header")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1")


@dataclass
class Dataset:
    """A loaded data set; `X` is a read-only memory map."""

    path: Path
    X: np.ndarray
    y: np.ndarray
    patient: np.ndarray
    record: np.ndarray
    start: np.ndarray
    split: np.ndarray
    label_names: tuple[str, ...]
    spec: PreprocessSpec
    meta: dict[str, Any]
    targets: np.ndarray  # label-set bit mask per window (1 << y where the set is the label alone)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def leads(self) -> list[str]:
        return list(self.meta["leads"])

    def indices(self, split: str) -> np.ndarray:
        """Window positions of one split; "all" is every window (external checks on a set never trained on)."""
        if split == "all":
            return np.arange(len(self.split))
        return np.flatnonzero(self.split == split)

    def class_indices(self, split: str) -> np.ndarray:
        """Window positions of one split that have a class (NO_CLASS windows left out)."""
        idx = self.indices(split)
        return idx[self.y[idx] != NO_CLASS_Y]

    @property
    def has_label_sets(self) -> bool:
        """Whether some window with a class accepts more than its label (partial labels)."""
        with_class = self.y != NO_CLASS_Y
        return bool(np.any(self.targets[with_class] != one_hot_masks(self.y[with_class])))

    def record_lead(self, record_id: str, lead: str) -> str:
        """The record's own name of the data set's lead `lead` (a fallback lead, e.g. MIT-BIH 102's V5 under MLII)."""
        for source in self.meta.get("sources", {}).values():
            own = source.get("record_leads", {}).get(record_id)
            if own is not None and len(own) == len(self.leads):
                upper = [n.upper() for n in self.leads]
                if lead.upper() in upper:
                    return str(own[upper.index(lead.upper())])
        return lead

    def record_path(self, record_id: str) -> Path:
        """The WFDB record (path without extension) a window came from, as the build read it."""
        for source in self.meta.get("sources", {}).values():
            if record_id in source.get("record_paths", {}):
                return Path(source["record_paths"][record_id])
        raise DatasetError(f"data set {self.path}: no path for record {record_id} (built before record paths were kept: rebuild it)")


class DatasetError(ValueError):
    """A data set directory that is missing, incomplete or inconsistent."""


def load_dataset(path: str | Path) -> Dataset:
    """Read a data set written by `DatasetWriter` (X memory-mapped)."""
    path = Path(path)
    meta_file = path / META_FILE
    if not meta_file.exists():
        raise DatasetError(f"{path}: not a data set ({META_FILE} is missing)")
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{path}: unsupported format {meta.get('format')!r} (expected {FORMAT})")
    try:
        X = np.load(path / "X.npy", mmap_mode="r")
        arrays = {k: np.load(path / f"{k}.npy", allow_pickle=False) for k in ARRAYS}
        target_file = path / f"{TARGETS}.npy"
        arrays[TARGETS] = np.load(target_file, allow_pickle=False) if target_file.exists() else one_hot_masks(arrays["y"])
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read arrays ({exc})") from exc
    n = meta["n_windows"]
    if X.shape != (n, len(meta["leads"]), meta["spec"]["window"]):
        raise DatasetError(f"{path}: X.npy has shape {X.shape}, {META_FILE} says ({n}, {len(meta['leads'])}, {meta['spec']['window']})")
    for k, a in arrays.items():
        if a.shape != (n,):
            raise DatasetError(f"{path}: {k}.npy has shape {a.shape}, expected ({n},)")
    return Dataset(
        path=path,
        X=X,
        label_names=tuple(meta["label_names"]),
        spec=PreprocessSpec.from_dict(meta["spec"]),
        meta=meta,
        **arrays,
    )


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished directory into place, replacing any old one without a gap of half a data set."""
    old = None
    if final.exists():
        old = final.with_name(f"{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


class DatasetWriter:
    """Streams windows to a scratch directory beside `out`; `finish` renames it into place.

    Used as a context manager: on any exception the scratch directory is removed and
    an existing data set at `out` is left untouched.
    """

    def __init__(self, out: Path, spec: PreprocessSpec) -> None:
        self.out = Path(out)
        self.n_leads: int | None = None  # fixed by the first record added
        self.spec = spec
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.with_name(f".{self.out.name}.tmp-{uuid.uuid4().hex[:8]}")
        self.tmp.mkdir()
        self._raw = open(self.tmp / "X.npy", "wb")
        self._raw.write(bytes(_NPY_HEADER_BYTES))
        self._x_digest = hashlib.sha256()
        self._cols: dict[str, list[np.ndarray]] = {k: [] for k in (*ARRAYS, TARGETS)}
        self.n = 0

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        if not self._raw.closed:
            self._raw.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def add(self, X: np.ndarray, y: np.ndarray, patient: str, record: str, start: np.ndarray, split: str = "",
            targets: np.ndarray | None = None) -> None:  # fmt: skip
        """Append one record's windows; an empty `split` is assigned before `finish`; `targets`: label-set masks (default {y})."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        k = len(X)
        if k == 0:
            return
        if self.n_leads is None:
            self.n_leads = X.shape[1]
        if X.shape[1:] != (self.n_leads, self.spec.window):
            raise DatasetError(f"record {record}: windows of shape {X.shape[1:]}, expected {(self.n_leads, self.spec.window)}")
        blob = X.tobytes()
        self._raw.write(blob)
        self._x_digest.update(blob)
        self._cols["y"].append(np.asarray(y, dtype=np.int64).reshape(k))
        self._cols[TARGETS].append(one_hot_masks(self._cols["y"][-1]) if targets is None else np.asarray(targets, dtype=np.int64).reshape(k))
        self._cols["patient"].append(np.full(k, patient))
        self._cols["record"].append(np.full(k, record))
        self._cols["start"].append(np.asarray(start, dtype=np.int64).reshape(k))
        self._cols["split"].append(np.full(k, split, dtype="<U5"))
        self.n += k

    def _copy_rows(self, keep: np.ndarray) -> "hashlib._Hash":
        """Rewrite X.npy with only the `keep` rows, in bounded memory; returns the running digest."""
        shape = (self.n_leads or 0, self.spec.window)
        src_path, dst_path = self.tmp / "X.npy", self.tmp / "X.keep.npy"
        src = np.memmap(src_path, np.float32, "r", offset=_NPY_HEADER_BYTES, shape=(self.n, *shape)) if self.n else np.zeros((0, *shape), np.float32)
        dst = np.lib.format.open_memmap(dst_path, mode="w+", dtype=np.float32, shape=(len(keep), *shape))
        digest = hashlib.sha256()
        step = max(1, _COPY_ROWS_BYTES // (int(np.prod(shape)) * 4 or 1))
        for i in range(0, len(keep), step):
            block = np.asarray(src[keep[i : i + step]])
            dst[i : i + len(block)] = block
            digest.update(block.tobytes())
        dst.flush()
        del src, dst
        os.replace(dst_path, src_path)
        return digest

    def columns(self) -> dict[str, np.ndarray]:
        """Per-window columns collected so far."""
        out = {}
        for k, parts in self._cols.items():
            out[k] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64 if k in ("y", "start", TARGETS) else "<U1")
        return out

    def finish(self, columns: dict[str, np.ndarray], keep: np.ndarray, meta: dict[str, Any]) -> Path:
        """Write the kept windows (sorted indices) with `columns` and `meta`; rename into place."""
        keep = np.asarray(keep, dtype=np.int64)
        check_split(columns["patient"][keep], columns["split"][keep])
        if len(keep) == self.n:  # every window kept: X.npy is already complete but for its header
            self._raw.seek(0)
            self._raw.write(npy_header((self.n, self.n_leads or 0, self.spec.window)))
            self._raw.close()
            digest = self._x_digest
        else:
            self._raw.close()
            digest = self._copy_rows(keep)
        targets = columns[TARGETS][keep]
        if np.any(targets != one_hot_masks(columns["y"][keep])):  # only partial-label sets keep the file (old hashes stay)
            np.save(self.tmp / f"{TARGETS}.npy", targets, allow_pickle=False)
            digest.update(targets.tobytes())
        for k in ARRAYS:
            arr = columns[k][keep]
            if arr.dtype.kind == "U" and arr.size == 0:
                arr = arr.astype("<U1")
            np.save(self.tmp / f"{k}.npy", arr, allow_pickle=False)
            digest.update(arr.tobytes())
        meta = {
            "format": FORMAT,
            **meta,
            "n_windows": int(len(keep)),
            "spec": self.spec.to_dict(),
            "spec_fingerprint": self.spec.fingerprint(),
            "dataset_sha256": digest.hexdigest(),
        }
        write_json_atomic(self.tmp / META_FILE, meta)
        replace_dir(self.tmp, self.out)
        return self.out


def count_table(y: np.ndarray, patient: np.ndarray, split: np.ndarray, label_names: tuple[str, ...]) -> dict[str, dict[str, dict[str, int]]]:
    """{split: {label: {"windows": n, "patients": n}}} including an "all" split."""
    table: dict[str, dict[str, dict[str, int]]] = {}
    for s in (*SPLITS, "all"):
        mask = np.ones(len(y), bool) if s == "all" else split == s
        table[s] = {
            name: {
                "windows": int(((y == i) & mask).sum()),
                "patients": int(len(np.unique(patient[(y == i) & mask]))),
            }
            for i, name in enumerate(label_names)
        }
    return table


def set_counts(y: np.ndarray, targets: np.ndarray, split: np.ndarray, label_names: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """{split: {"NORMAL|MI": windows, "NOISY": windows}} for windows whose set is not just their label
    (partial labels and windows of no class); empty when there are none."""
    odd = (targets != one_hot_masks(y)) | (y == NO_CLASS_Y)
    table: dict[str, dict[str, int]] = {}
    for s in (*SPLITS, "all"):
        m = odd & (np.ones(len(y), bool) if s == "all" else split == s)
        if m.any():
            names, n = np.unique([mask_names(int(t), label_names) for t in targets[m]], return_counts=True)
            table[s] = {str(a): int(b) for a, b in zip(names, n)}
    return table
