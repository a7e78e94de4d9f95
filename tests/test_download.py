"""pipeline.data.download against a local Range-capable HTTP server (127.0.0.1 only, no internet)."""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import socket
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import wfdb

from pipeline.data import download as dl
from pipeline.data.download import DATABASES, DownloadError, add_arguments, download_database, run_from_args

MITDB = "/files/mitdb/1.0.0"


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files plus a minimal single-range 206; counts requests per path on the server."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        path = urlsplit(self.path).path
        rng = self.headers.get("Range")
        with srv.lock:
            srv.counts[path] += 1
            srv.ranges.append((path, rng))
        if not rng or srv.ignore_range:
            return super().do_GET()
        file = Path(self.translate_path(self.path))
        if not file.is_file():
            return self.send_error(404)
        self._send_range(file.read_bytes(), rng)

    def _send_range(self, data: bytes, rng: str) -> None:
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
        if m is None:
            return self.send_error(400)
        start = int(m[1])
        end = min(int(m[2]) if m[2] else len(data) - 1, len(data) - 1)
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start : end + 1]
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path: Path):
    """A ThreadingHTTPServer on 127.0.0.1:<free port> serving tmp_path/'srv'; yields (server, base_url)."""
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(RangeHandler, directory=str(root))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    srv.root = root
    srv.counts = Counter()
    srv.ranges = []
    srv.lock = threading.Lock()
    srv.ignore_range = False
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv, f"http://127.0.0.1:{srv.server_address[1]}/files"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def write_wfdb(directory: Path, name: str, seed: int, seconds: float = 2.0, ann: bool = False) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    fs = 360
    sig = np.random.default_rng(seed).standard_normal((int(seconds * fs), 2)) * 0.5
    wfdb.wrsamp(
        name, fs=fs, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=sig, fmt=["212", "212"], write_dir=str(directory)
    )
    if ann:
        samples = np.arange(100, int(seconds * fs), 300)
        wfdb.wrann(name, "atr", sample=samples, symbol=["N"] * len(samples), write_dir=str(directory))


def write_sums(db_root: Path) -> dict[str, str]:
    """PhysioNet-style SHA256SUMS.txt over every file under db_root; returns rel -> sha256."""
    sums = {
        p.relative_to(db_root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(db_root.rglob("*"))
        if p.is_file() and p.name != "SHA256SUMS.txt"
    }
    (db_root / "SHA256SUMS.txt").write_text("".join(f"{h} {rel}\n" for rel, h in sums.items()))
    return sums


def make_mitdb(srv_root: Path, sums: bool = True) -> Path:
    db_root = srv_root / "files" / "mitdb" / "1.0.0"
    for i, name in enumerate(("100", "101")):
        write_wfdb(db_root, name, seed=i, ann=True)
    (db_root / "RECORDS").write_text("100\n101\n")
    if sums:
        write_sums(db_root)
    return db_root


@pytest.fixture
def mitdb(server):
    srv, url = server
    return srv, url, make_mitdb(srv.root)


def same_tree(src: Path, out: Path) -> None:
    for p in src.rglob("*"):
        if p.is_file() and p.name != "SHA256SUMS.txt":
            assert (out / p.relative_to(src)).read_bytes() == p.read_bytes(), p.name


def test_databases_table() -> None:
    assert {k: (d.slug, d.version) for k, d in DATABASES.items()} == {
        "mitdb": ("mitdb", "1.0.0"),
        "nsrdb": ("nsrdb", "1.0.0"),
        "ptbdb": ("ptbdb", "1.0.0"),
        "ptbxl": ("ptb-xl", "1.0.3"),
    }
    assert DATABASES["mitdb"].annotation_exts == ("atr",)
    assert issubclass(DownloadError, RuntimeError)


def test_full_download(mitdb, tmp_path: Path) -> None:
    srv, url, src = mitdb
    root = download_database("mitdb", tmp_path / "out", base_url=url, progress=False)
    assert root == tmp_path / "out" / "mitdb"
    same_tree(src, root)
    assert not list(root.rglob("*.part"))
    rec = wfdb.rdrecord(str(root / "100"))
    assert rec.sig_name == ["MLII", "V1"] and rec.p_signal.shape == (720, 2)
    assert len(wfdb.rdann(str(root / "100"), "atr").sample) > 0
    info = json.loads((root / dl.MANIFEST_FILE).read_text())
    assert info["source"] == f"{url}/mitdb/1.0.0" and info["version"] == "1.0.0"
    assert info["files"] == 7 and info["verified"] is True  # 2 x (hea, dat, atr) + RECORDS
    assert info["bytes"] == sum(p.stat().st_size for p in src.iterdir() if p.name != "SHA256SUMS.txt")


def test_second_run_fetches_only_sums(mitdb, tmp_path: Path) -> None:
    srv, url, _ = mitdb
    download_database("mitdb", tmp_path / "out", base_url=url, progress=False)
    srv.counts.clear()
    download_database("mitdb", tmp_path / "out", base_url=url, progress=False)
    assert srv.counts == Counter({f"{MITDB}/SHA256SUMS.txt": 1})


def test_wrong_local_file_is_replaced(mitdb, tmp_path: Path) -> None:
    srv, url, src = mitdb
    root = download_database("mitdb", tmp_path / "out", base_url=url, progress=False)
    (root / "100.dat").write_bytes(b"garbage")
    srv.counts.clear()
    download_database("mitdb", tmp_path / "out", base_url=url, progress=False)
    assert srv.counts == Counter({f"{MITDB}/SHA256SUMS.txt": 1, f"{MITDB}/100.dat": 1})
    assert (root / "100.dat").read_bytes() == (src / "100.dat").read_bytes()


@pytest.mark.parametrize("ignore_range", [False, True], ids=["range", "server-ignores-range"])
def test_resume_from_part(mitdb, tmp_path: Path, ignore_range: bool) -> None:
    srv, url, src = mitdb
    srv.ignore_range = ignore_range
    data = (src / "100.dat").read_bytes()
    half = len(data) // 2
    part = tmp_path / "out" / "mitdb" / "100.dat.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:half])
    root = download_database("mitdb", tmp_path / "out", base_url=url, progress=False)
    assert (root / "100.dat").read_bytes() == data
    assert not part.exists()
    assert (f"{MITDB}/100.dat", f"bytes={half}-") in srv.ranges
    assert srv.counts[f"{MITDB}/100.dat"] == 1


def test_stale_part_is_restarted(mitdb, tmp_path: Path) -> None:
    srv, url, src = mitdb
    part = tmp_path / "out" / "mitdb" / "101.dat.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\xff" * 10)
    root = download_database("mitdb", tmp_path / "out", base_url=url, progress=False)
    assert (root / "101.dat").read_bytes() == (src / "101.dat").read_bytes()
    assert srv.counts[f"{MITDB}/101.dat"] == 2  # a range that fails the hash, then the whole file


def test_corrupt_file_raises(mitdb, tmp_path: Path) -> None:
    srv, url, src = mitdb
    good = hashlib.sha256((src / "101.dat").read_bytes()).hexdigest()
    bad = bytearray((src / "101.dat").read_bytes())
    bad[0] ^= 0xFF
    (src / "101.dat").write_bytes(bytes(bad))
    with pytest.raises(DownloadError) as exc:
        download_database("mitdb", tmp_path / "out", base_url=url, progress=False, workers=1)
    msg = str(exc.value)
    assert "101.dat" in msg and good in msg and hashlib.sha256(bad).hexdigest() in msg
    assert not (tmp_path / "out" / "mitdb" / "101.dat").exists()
    assert not (tmp_path / "out" / "mitdb" / dl.MANIFEST_FILE).exists()


def test_missing_listed_file_names_url_and_status(mitdb, tmp_path: Path) -> None:
    srv, url, src = mitdb
    (src / "100.atr").unlink()
    with pytest.raises(DownloadError, match=r"HTTP 404 .*/mitdb/1\.0\.0/100\.atr"):
        download_database("mitdb", tmp_path / "out", base_url=url, progress=False)


def test_fallback_records_and_headers(server, tmp_path: Path) -> None:
    srv, url = server
    src = make_mitdb(srv.root, sums=False)
    for i, seg in enumerate(("200_1", "200_2")):  # a hand-written multi-segment record
        write_wfdb(src, seg, seed=10 + i, seconds=1.0)
    (src / "200.hea").write_text("200/2 2 360 720\n200_1 360\n200_2 360\n")
    (src / "200.atr").write_bytes(b"\x00\x00")
    (src / "RECORDS").write_text("100\n101\n200\n")
    with pytest.warns(UserWarning, match="no SHA256SUMS for mitdb: files are not verified"):
        root = download_database("mitdb", tmp_path / "out", base_url=url, progress=False)
    same_tree(src, root)
    assert srv.counts[f"{MITDB}/SHA256SUMS.txt"] == 1
    assert srv.counts[f"{MITDB}/200_2.dat"] == 1
    info = json.loads((root / dl.MANIFEST_FILE).read_text())
    assert info["verified"] is False and info["files"] == 1 + 3 + 3 + 2 + 2 + 2  # RECORDS, heads, atrs, dats


def test_nested_layout_and_slug(server, tmp_path: Path) -> None:
    srv, url = server
    src = srv.root / "files" / "ptb-xl" / "1.0.3"
    write_wfdb(src / "records100" / "00000", "00001_lr", seed=3)
    (src / "ptbxl_database.csv").write_text("ecg_id,filename_lr\n1,records100/00000/00001_lr\n")
    write_sums(src)
    root = download_database("ptbxl", tmp_path / "raw", base_url=url, progress=False)
    assert (tmp_path / "raw" / "ptbxl" / "records100" / "00000" / "00001_lr.hea").is_file()
    same_tree(src, root)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/files"


def test_offline(tmp_path: Path) -> None:
    url = closed_port_url()
    with pytest.raises(DownloadError, match="could not be reached") as exc:
        download_database("mitdb", tmp_path / "out", base_url=url, progress=False, timeout=5)
    msg = str(exc.value)
    assert f"{url}/mitdb/1.0.0/SHA256SUMS.txt" in msg and dl.URL_ENV in msg and "by hand" in msg


def test_env_var_override(mitdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    srv, url, src = mitdb
    monkeypatch.setenv(dl.URL_ENV, url + "/")
    root = download_database("mitdb", tmp_path / "out", progress=False)
    same_tree(src, root)
    monkeypatch.delenv(dl.URL_ENV)
    assert dl.resolve_base_url(None) == "https://physionet.org/files"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_defaults() -> None:
    args = parse([])
    assert args.datasets == ["mitdb", "nsrdb", "ptbdb", "ptbxl"]
    assert Path(args.out) == Path("data/raw") and args.base_url is None
    with pytest.raises(SystemExit):
        parse(["--datasets", "nope"])


def test_run_from_args(mitdb, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    srv, url, _ = mitdb
    args = parse(["--datasets", "mitdb", "--out", str(tmp_path / "out"), "--base-url", url])
    args.no_progress = True
    assert run_from_args(args) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("mitdb: 7 files") and "verified" in out


def test_run_from_args_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv(dl.URL_ENV, closed_port_url())
    args = parse(["--datasets", "nsrdb", "--out", str(tmp_path / "out")])
    assert run_from_args(args) == 2
    captured = capsys.readouterr()
    assert "could not be reached" in captured.err and "/nsrdb/1.0.0/" in captured.err and captured.out == ""


def test_header_files() -> None:
    single = "100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n"
    assert dl.header_files(single) == (["100.dat"], [])
    multi = "# c\nm/3 1 250 30\nm_layout 0\n~ 10\nm_2 20\n"
    assert dl.header_files(multi) == ([], ["m_layout", "m_2"])
    assert dl.header_files("m_layout 1 250 0\n~ 0 200 16 0 0 0 0 II\n") == ([], [])


@pytest.mark.parametrize("line", ["abc 100.dat", f"{'0' * 64} ../etc/passwd", f"{'0' * 64} /abs"])
def test_bad_sums_lines(line: str) -> None:
    with pytest.raises(DownloadError):
        dl.parse_sha256sums(line + "\n")
