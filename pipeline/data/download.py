"""Resumable, sha256-verified PhysioNet downloader (`ecg-pipeline download`).

Files land in the official PhysioNet layout under `out_dir/<db>/`. The file list comes from
the database's `SHA256SUMS.txt`; when a server has none, from `RECORDS` plus the WFDB headers
(unverified). Partial files live in `<file>.part` and are resumed with HTTP Range requests.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import posixpath
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from pipeline.util.atomic import write_bytes_atomic

DEFAULT_BASE_URL = "https://physionet.org/files"
URL_ENV = "ECG_EDGE_PHYSIONET_URL"
SUMS_FILE = "SHA256SUMS.txt"
RECORDS_FILE = "RECORDS"
MANIFEST_FILE = ".ecg_edge_download.json"
CHUNK = 1 << 20
TIMEOUT = 60.0
WORKERS = 4
USER_AGENT = "ecg-edge-downloader/0.1 (+urllib)"


@dataclass(frozen=True)
class Database:
    """A PhysioNet database: local name, PhysioNet slug, version and annotation extensions."""

    name: str
    slug: str
    version: str
    annotation_exts: tuple[str, ...] = ()


DATABASES: dict[str, Database] = {
    "mitdb": Database("mitdb", "mitdb", "1.0.0", ("atr",)),
    "nsrdb": Database("nsrdb", "nsrdb", "1.0.0"),
    "ptbdb": Database("ptbdb", "ptbdb", "1.0.0"),
    "ptbxl": Database("ptbxl", "ptb-xl", "1.0.3"),
}


class DownloadError(RuntimeError):
    """A download that cannot complete; the message says what, where and what to do."""


class _Cancelled(Exception):
    """Raised inside a worker when another worker has failed."""


@dataclass(frozen=True)
class _Job:
    """One file to fetch: its path relative to the database root and its expected sha256."""

    rel: str
    sha256: str | None = None


@dataclass
class _Stats:
    files: int = 0
    bytes: int = 0


# ---------------------------------------------------------------- helpers


def resolve_base_url(base_url: str | None) -> str:
    """`base_url`, else `$ECG_EDGE_PHYSIONET_URL`, else the PhysioNet default; no trailing slash."""
    url = base_url or os.environ.get(URL_ENV) or DEFAULT_BASE_URL
    return url.rstrip("/")


def database_url(db: Database, base_url: str) -> str:
    return f"{base_url}/{db.slug}/{db.version}"


def _file_url(root_url: str, rel: str) -> str:
    return f"{root_url}/{urllib.parse.quote(rel, safe='/')}"


def _safe_rel(rel: str) -> str:
    """Reject paths that would escape the database directory."""
    norm = posixpath.normpath(rel.replace("\\", "/"))
    if not rel or norm.startswith(("/", "../")) or norm in (".", "..") or ":" in norm.split("/")[0]:
        raise DownloadError(f"refusing unsafe file path from server: {rel!r}")
    return norm


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _unreachable(url: str, reason: object) -> DownloadError:
    host = urllib.parse.urlsplit(url).netloc or url
    return DownloadError(
        f"{host} could not be reached ({reason}) while fetching {url}. "
        f"Check the connection and rerun (partial files are resumed), or place the files by hand "
        f"in the PhysioNet layout (<out>/<db>/<file>), or set {URL_ENV} to a mirror."
    )


def _http_error(url: str, err: urllib.error.HTTPError) -> DownloadError:
    return DownloadError(f"HTTP {err.code} {err.reason} for {url}")


def _open(url: str, timeout: float, headers: dict[str, str] | None = None):
    """urlopen with our User-Agent; network failures become DownloadError (HTTPError passes)."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except urllib.error.URLError as e:
        raise _unreachable(url, e.reason) from e
    except OSError as e:  # timeouts, resets
        raise _unreachable(url, e) from e


def _atomic_write(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data)


# ---------------------------------------------------------------- file lists


def parse_sha256sums(text: str) -> list[_Job]:
    """`<sha256hex> <relpath>` lines (sha256sum format, `*` binary marker allowed) to jobs."""
    jobs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.strip().split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise DownloadError(f"{SUMS_FILE} line {n} is not '<sha256> <path>': {line!r}")
        rel = _safe_rel(parts[1].lstrip("*"))
        if rel != SUMS_FILE:
            jobs.append(_Job(rel, digest))
    return jobs


def parse_records(text: str) -> list[str]:
    return [_safe_rel(line.strip()) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def header_files(text: str) -> tuple[list[str], list[str]]:
    """A WFDB header's `(signal files, segment records)`, names relative to the header's directory."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return [], []
    first = lines[0].split()
    name = first[0]
    if "/" in name:  # multi-segment: "<name>/<nseg> <nsig> ..."; then one "<seg> <nsamp>" line per segment
        nseg = int(name.split("/", 1)[1])
        segs = [ln.split()[0] for ln in lines[1 : 1 + nseg]]
        return [], list(dict.fromkeys(s for s in segs if s != "~"))
    nsig = int(first[1]) if len(first) > 1 else 0
    files = [ln.split()[0] for ln in lines[1 : 1 + nsig]]
    return list(dict.fromkeys(f for f in files if f != "~")), []


def _sibling(rel: str, name: str) -> str:
    return _safe_rel(posixpath.join(posixpath.dirname(rel), name))


# ---------------------------------------------------------------- one file


class _Fetcher:
    """Downloads single files of one database into `dest_root`, resuming `.part` files."""

    def __init__(self, root_url: str, dest_root: Path, timeout: float, stop: threading.Event) -> None:
        self.root_url = root_url
        self.dest_root = dest_root
        self.timeout = timeout
        self.stop = stop

    def fetch(self, job: _Job) -> int:
        """Make `job.rel` present (verified when a hash is known); returns bytes transferred."""
        dest = self.dest_root / job.rel
        if dest.is_file():
            if job.sha256 is None or sha256_file(dest) == job.sha256:
                return 0
            dest.unlink()  # wrong content: never leave it under the final name
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        resumed = part.is_file() and part.stat().st_size > 0
        got = self._download(job.rel, part)
        actual = sha256_file(part) if job.sha256 else None
        if job.sha256 and actual != job.sha256 and resumed:
            part.unlink(missing_ok=True)  # a stale partial: try once from the start
            got += self._download(job.rel, part)
            actual = sha256_file(part)
        if job.sha256 and actual != job.sha256:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{job.rel}: sha256 mismatch (expected {job.sha256}, got {actual}) from {self._url(job.rel)}"
            )
        os.replace(part, dest)
        return got

    def _url(self, rel: str) -> str:
        return _file_url(self.root_url, rel)

    def _download(self, rel: str, part: Path) -> int:
        """Fill `part` with the whole file, resuming from its current size when possible."""
        url = self._url(rel)
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            resp = _open(url, self.timeout, headers)
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # partial is already whole (or bogus): start over
                part.unlink(missing_ok=True)
                return self._download(rel, part)
            raise _http_error(url, e) from e
        with resp:
            if resp.status == 206 and _range_start(resp) != offset:
                if not offset:
                    raise DownloadError(f"unexpected partial response (206) for {url}")
                resp.close()  # a range we did not ask for: start over
                part.unlink(missing_ok=True)
                return self._download(rel, part)
            # 200 to a Range request means the server ignored it: "wb" starts over
            return self._stream(resp, part, offset > 0 and resp.status == 206, url)

    def _stream(self, resp, part: Path, append: bool, url: str) -> int:
        got = 0
        with open(part, "ab" if append else "wb") as f:
            while block := self._read(resp, url):
                if self.stop.is_set():
                    raise _Cancelled
                f.write(block)
                got += len(block)
        return got

    @staticmethod
    def _read(resp, url: str) -> bytes:
        try:
            return resp.read(CHUNK)
        except (OSError, http.client.HTTPException) as e:
            raise _unreachable(url, f"transfer interrupted: {e!r}") from e


def _range_start(resp) -> int | None:
    """First byte of a `Content-Range: bytes a-b/n` response header, or None."""
    value = resp.headers.get("Content-Range", "")
    try:
        unit, rest = value.split(None, 1)
        return int(rest.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


# ---------------------------------------------------------------- many files


def _run_jobs(jobs: Iterable[_Job], fetcher: _Fetcher, bar: tqdm, stats: _Stats, workers: int) -> None:
    """Fetch `jobs` with a thread pool; the first failure cancels the rest and is raised."""
    jobs = list(jobs)

    def one(job: _Job) -> None:
        if fetcher.stop.is_set():
            raise _Cancelled
        got = fetcher.fetch(job)
        with lock:
            stats.files += 1
            stats.bytes += got
            bar.update(1)
            bar.set_postfix_str(_human(stats.bytes), refresh=False)

    lock = threading.Lock()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ecg-download")
    try:
        futures = [pool.submit(one, job) for job in jobs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        errors = [f.exception() for f in done if f.exception() and not isinstance(f.exception(), _Cancelled)]
        if errors:
            fetcher.stop.set()
            raise errors[0]
    except BaseException:
        fetcher.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _sums_jobs(root_url: str, dest_root: Path, timeout: float) -> list[_Job] | None:
    """Jobs from SHA256SUMS.txt (saved locally), or None when the server has none (404)."""
    url = _file_url(root_url, SUMS_FILE)
    try:
        with _open(url, timeout) as resp:
            data = resp.read()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise _http_error(url, e) from e
    except (OSError, http.client.HTTPException) as e:
        raise _unreachable(url, e) from e
    jobs = parse_sha256sums(data.decode("utf-8"))
    _atomic_write(dest_root / SUMS_FILE, data)
    return jobs


def _fallback(db: Database, fetcher: _Fetcher, bar: tqdm, stats: _Stats, workers: int) -> list[str]:
    """RECORDS + headers (+ annotations), unverified; returns every relative path fetched."""
    _run_jobs([_Job(RECORDS_FILE)], fetcher, bar, stats, 1)
    records = parse_records((fetcher.dest_root / RECORDS_FILE).read_text())
    all_rels = [RECORDS_FILE]
    data: list[str] = [f"{r}.{ext}" for r in records for ext in db.annotation_exts]
    seen: set[str] = set()
    pending = records
    while pending:  # headers first; multi-segment headers add a round for their segments
        seen.update(pending)
        heads = [f"{r}.hea" for r in pending]
        bar.total = (bar.total or 0) + len(heads)
        _run_jobs([_Job(h) for h in heads], fetcher, bar, stats, workers)
        all_rels += heads
        nxt: list[str] = []
        for rec, head in zip(pending, heads):
            files, segs = header_files((fetcher.dest_root / head).read_text(errors="replace"))
            data += [_sibling(rec, f) for f in files]
            nxt += [s for s in (_sibling(rec, g) for g in segs) if s not in seen]
        pending = list(dict.fromkeys(nxt))
    data = list(dict.fromkeys(data))
    bar.total += len(data)
    _run_jobs([_Job(r) for r in data], fetcher, bar, stats, workers)
    return all_rels + data


def _write_manifest(dest_root: Path, info: dict) -> None:
    _atomic_write(dest_root / MANIFEST_FILE, (json.dumps(info, indent=2) + "\n").encode())


def download_database(
    name: str,
    out_dir: Path,
    base_url: str | None = None,
    progress: bool = True,
    *,
    timeout: float = TIMEOUT,
    workers: int = WORKERS,
) -> Path:
    """Download database `name` into `out_dir/name` (resumable, verified when possible); returns that path."""
    if name not in DATABASES:
        raise DownloadError(f"unknown database {name!r} (known: {', '.join(DATABASES)})")
    db = DATABASES[name]
    root_url = database_url(db, resolve_base_url(base_url))
    dest_root = Path(out_dir) / db.name
    fetcher = _Fetcher(root_url, dest_root, timeout, threading.Event())
    stats = _Stats()
    jobs = _sums_jobs(root_url, dest_root, timeout)
    with tqdm(total=len(jobs) if jobs is not None else 1, desc=db.name, unit="file", disable=None if progress else True) as bar:
        if jobs is not None:
            _run_jobs(jobs, fetcher, bar, stats, workers)
            rels = [j.rel for j in jobs]
        else:
            warnings.warn(f"no SHA256SUMS for {db.name}: files are not verified", stacklevel=2)
            rels = _fallback(db, fetcher, bar, stats, workers)
    _write_manifest(dest_root, _manifest(db, root_url, dest_root, rels, stats, jobs is not None))
    return dest_root


def _manifest(db: Database, root_url: str, dest_root: Path, rels: list[str], stats: _Stats, verified: bool) -> dict:
    return {
        "database": db.name,
        "source": root_url,
        "slug": db.slug,
        "version": db.version,
        "files": len(rels),
        "bytes": sum((dest_root / r).stat().st_size for r in rels),
        "bytes_downloaded": stats.bytes,
        "verified": verified,
        "completed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ---------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ecg-pipeline download`."""
    parser.add_argument(
        "--datasets", nargs="+", choices=list(DATABASES), default=list(DATABASES), help="databases (default: all)"
    )
    parser.add_argument("--out", type=Path, default=Path("data/raw"), help="root directory (default data/raw)")
    parser.add_argument(
        "--base-url", default=None, help=f"mirror of {DEFAULT_BASE_URL} (default ${URL_ENV} or PhysioNet)"
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Download each chosen database and print a summary line; DownloadError -> stderr, 2."""
    progress = not getattr(args, "no_progress", False)
    try:
        for name in args.datasets:
            root = download_database(name, Path(args.out), getattr(args, "base_url", None), progress)
            print(_summary(root))
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _summary(root: Path) -> str:
    info = json.loads((root / MANIFEST_FILE).read_text())
    check = "sha256-verified" if info["verified"] else "NOT verified"
    return (
        f"{info['database']}: {info['files']} files, {_human(info['bytes'])} in {root} "
        f"({check}; {_human(info['bytes_downloaded'])} downloaded) from {info['source']}"
    )
