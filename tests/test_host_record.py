"""`ecg-host record` (host/record.py): live streams to WFDB records.

From the virtual device (binary frames, lead-off 2 s every 6 s) and from a virtual plain-text sketch
(`host.textsim.TextDevice`, 250 Hz, `!` lines): rate, length, mV scale against the known ADC counts,
lead-off annotations against the known intervals, device RESULTs annotated, `ecg-pipeline predict` on
the recording; SIGINT, SIGKILL and a vanished port each leave a record `wfdb.rdrecord` reads; an
existing record is not overwritten; a missing port is a clear error. From a fake board with the BEATS
capability (tests/fake_board.py) its beats become WFDB beat annotations (PATH.qrs) that wfdb and the
pipeline read back; without the capability there is no such file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import wfdb

from host.devices import Device, SignalOptions, simulate
from host.record import ANN_EXT, BEAT_EXT, INVALID, WfdbRecording
from host.textsim import TextDevice, TextSignal
from pipeline.signal.ad8232 import AD8232Config, adc_to_mv
from pipeline.signal.beats import DEFAULT_BEATS, detect_beats_timed
from pipeline.signal.device_rule import good_runs

REPO = Path(__file__).resolve().parents[1]
LEAD_OFF = (6, 2)  # the virtual device: electrodes off for the last 2 s of every 6 s
RATE = 250


def _record_cmd(port: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "host.cli", "record", "--port", port, "--out", str(out), *extra]


def _run(port: str, out: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(_record_cmd(port, out, *extra), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _comments(rec: wfdb.Record) -> dict[str, str]:
    return dict(c.split(": ", 1) for c in rec.comments if ": " in c)


def _kept_samples(stdout: str) -> int:
    m = re.search(r"kept [\d.]+ s[^:]*: (\d+) samples", stdout)
    assert m, stdout
    return int(m.group(1))


def _intervals(mask: np.ndarray) -> list[tuple[int, int | None]]:
    """[start, end) of every True run; end None when it runs to the end."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b) if b < mask.size else None) for a, b in zip(edges[::2], edges[1::2])]


def _lead_off_annotations(path: Path) -> list[tuple[int, int | None]]:
    ann = wfdb.rdann(str(path), ANN_EXT)
    out: list[tuple[int, int | None]] = []
    for s, sym, sub, aux in zip(ann.sample, ann.symbol, ann.subtype, ann.aux_note):
        if sym != "~":
            continue
        if aux == "lead_off":
            assert sub == 0x11
            out.append((int(s), None))
        else:
            assert aux == "lead_on" and sub == 0 and out and out[-1][1] is None
            out[-1] = (out[-1][0], int(s))
    return out


@pytest.fixture(scope="module")
def device(demo_bundle: tuple[Path, Path], device_cache: Path) -> Iterator[Device]:
    bundle = demo_bundle[1]
    with simulate(bundle, signal_opts=SignalOptions(lead_off=LEAD_OFF), work=device_cache) as dev:
        yield dev


def test_record_virtual_device(device: Device, demo_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "dev01"
    done = _run(device.port, out, "--seconds", "12")
    assert done.returncode == 0, done.stderr
    n = _kept_samples(done.stdout)
    rec = wfdb.rdrecord(str(out))
    assert rec.fs == RATE and rec.sig_name == ["II"] and rec.units == ["mV"]
    assert rec.sig_len == n == 12 * RATE
    c = _comments(rec)
    assert c["port"] == device.port and c["source"].startswith("binary") and c["rate_estimated"] == "no"
    assert "model_sha256" in c["firmware"] and c["samples_lost"].startswith("0 ")
    # mV at the electrodes: the stored counts through the AD8232 chain
    counts = np.fromfile(f"{out}.dat", dtype="<i2").astype(np.int64)
    assert counts.size == n and counts.min() >= 0 and counts.max() <= 4095
    np.testing.assert_allclose(rec.p_signal[:, 0], adc_to_mv(counts, AD8232Config()), atol=1e-6)
    # lead-off: the device's schedule, in its sample counter
    origin = int(c["first_sample"].split()[0])
    idx = origin + np.arange(n)
    expected = idx % (LEAD_OFF[0] * RATE) >= (LEAD_OFF[0] - LEAD_OFF[1]) * RATE
    assert _lead_off_annotations(out) == _intervals(expected)
    assert (counts[expected] == 4095).all() and (counts[~expected] < 4095).all()
    # every device RESULT whose window ends in the record, at that last sample
    ann = wfdb.rdann(str(out), ANN_EXT)
    results = [(s, a) for s, a in zip(ann.sample, ann.aux_note) if a.startswith("result ")]
    ends = [k for k in range(0, (origin + n) // 625 + 1) if origin <= k * 625 + 2499 < origin + n]
    windows = [int(a.split()[1].split("=")[1]) for _, a in results]
    # the RESULT of a window ending in the last samples may come after the recording stopped
    assert windows in (ends, ends[:-1]) and len(windows) >= 1, (windows, ends)
    for s, a in results:
        f = dict(kv.split("=", 1) for kv in a.split()[1:])
        k = int(f["window"])
        assert int(f["first"]) == k * 625 - origin and s == int(f["first"]) + 2499
        assert f["status"] == "LEAD_OFF" and f["label"] == "-"  # a 10 s window always holds 2 s of lead-off
    # the firmware's beats (BEATS frames) as beat annotations: in a run of good samples that starts inside
    # the record the detector starts with it, so its beats are detect_beats' on the recorded counts (those
    # decided before the recording stopped)
    board = wfdb.rdann(str(out), BEAT_EXT).sample
    ref, decided = detect_beats_timed(counts, expected)
    inner = [(a, b) for a, b in good_runs(expected) if a > 0]
    assert any(b - a >= DEFAULT_BEATS.learn + DEFAULT_BEATS.reach for a, b in inner)

    def within(beats: np.ndarray, keep: np.ndarray) -> list[int]:
        return [int(x) for x, k in zip(beats, keep) if k and any(a <= x < b for a, b in inner)]

    want = within(ref, decided < n - RATE)  # a BEATS frame may still be on its way at the end
    got = within(board, np.ones(board.size, dtype=bool))
    assert len(want) >= 3 and got[: len(want)] == want and len(got) - len(want) <= 2, (got, want)

    # the recording feeds back into the pipeline
    ckpt = demo_bundle[1].parent / "train" / "checkpoint.pt"
    js = tmp_path / "predict.json"
    pred = subprocess.run([sys.executable, "-m", "pipeline.cli", "predict", "--checkpoint", str(ckpt), "--input", str(out), "--out", str(js)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert pred.returncode == 0, pred.stderr
    assert json.loads(js.read_text())["windows"], pred.stdout

    # an existing record is refused, --force overwrites it
    again = _run(device.port, out, "--seconds", "1")
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
    assert wfdb.rdrecord(str(out)).sig_len == n
    forced = _run(device.port, out, "--seconds", "2", "--force")
    assert forced.returncode == 0, forced.stderr
    assert wfdb.rdrecord(str(out)).sig_len == 2 * RATE


def _start(port: str, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_record_cmd(port, out, *extra), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_header(out: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not Path(f"{out}.hea").exists():
        assert time.monotonic() < deadline, f"no {out}.hea within {timeout} s"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_recording_is_kept(device: Device, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "int01"
    proc = _start(device.port, out)  # --seconds 0: until stopped
    _wait_for_header(out)
    time.sleep(3)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    n = _kept_samples(stdout)
    assert ("interrupted" if sig == signal.SIGINT else "terminated") in stdout
    rec = wfdb.rdrecord(str(out))
    assert rec.sig_len == n and 3 * RATE <= n <= 8 * RATE
    assert np.fromfile(f"{out}.dat", dtype="<i2").size == n


def test_killed_recording_is_readable(device: Device, tmp_path: Path) -> None:
    out = tmp_path / "kill01"
    proc = _start(device.port, out)
    _wait_for_header(out)
    time.sleep(4)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    rec = wfdb.rdrecord(str(out))
    stored = np.fromfile(f"{out}.dat", dtype="<i2").size
    # the header lags the data by at most about a second
    assert 3 * RATE <= rec.sig_len <= stored <= rec.sig_len + 2 * RATE
    assert not np.isnan(rec.p_signal).any()
    wfdb.rdann(str(out), ANN_EXT)  # the annotations too


def test_pulled_cable_keeps_the_record(demo_bundle: tuple[Path, Path], device_cache: Path, tmp_path: Path) -> None:
    bundle = demo_bundle[1]
    out = tmp_path / "pulled"
    dev = simulate(bundle, work=device_cache)
    with dev:
        proc = _start(dev.port, out, "--seconds", "30")
        _wait_for_header(out)
        time.sleep(2)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1, (stdout, stderr)
    assert "error:" in stderr and dev.port in stderr
    n = _kept_samples(stdout)
    assert wfdb.rdrecord(str(out)).sig_len == n >= 2 * RATE


def test_record_text_sketch(tmp_path: Path) -> None:
    """A plain-text sketch at 250 Hz, 10-bit, with '!' lines: the rate is estimated (and says so), the
    samples are the sketch's counts, the lead-off intervals its '!' stretches."""
    out = tmp_path / "txt01"
    lead_off = (5, 1)
    with TextDevice(rate=RATE, seed=4, lead_off=lead_off, adc_bits=10) as dev:
        done = _run(dev.port, out, "--seconds", "12", "--text", "--label", "NORMAL", "--patient", "alice")
    assert done.returncode == 0, done.stderr
    assert "estimated" in done.stdout
    n = _kept_samples(done.stdout)
    rec = wfdb.rdrecord(str(out))
    assert rec.fs == RATE and rec.sig_len == n == 12 * RATE
    c = _comments(rec)
    assert c["source"].startswith("text") and c["rate_estimated"] == "yes" and c["firmware"].startswith("none")
    counts = np.fromfile(f"{out}.dat", dtype="<i2").astype(np.int64)
    # where the recording starts in the sketch's output: its own signal, regenerated
    known, known_off = TextSignal(RATE, 72, 4, lead_off, 10).next(n + 40 * RATE)
    starts = [i for i in range(known.size - n + 1) if np.array_equal(known[i : i + 50], counts[:50])]
    assert starts, "the recording is not the sketch's signal"
    s = starts[0]
    assert np.array_equal(counts, known[s : s + n])
    np.testing.assert_allclose(rec.p_signal[:, 0], adc_to_mv(known[s : s + n], AD8232Config(adc_bits=10)), atol=1e-6)
    assert "10 bits" in c["adc"]
    assert _lead_off_annotations(out) == _intervals(known_off[s : s + n])
    assert any(a[1] is not None for a in _intervals(known_off[s : s + n]))
    assert c["label"] == "NORMAL" and c["patient"] == "alice"
    _prepare_recordings(out, tmp_path)


def _prepare_recordings(recording: Path, tmp_path: Path) -> None:
    """A recording with --label feeds `ecg-pipeline prepare recordings`, beside records of other people,
    rates and labels; a record without a label is left out and counted."""
    from conftest import ecg_like, write_record

    from pipeline.cli import main as pipeline_main
    from pipeline.data.dataset import load_dataset

    src = tmp_path / "recordings"
    src.mkdir()
    for ext in ("hea", "dat"):
        (src / f"{recording.name}.{ext}").write_bytes(Path(f"{recording}.{ext}").read_bytes())
    for k, (label, patient) in enumerate([("MI", "bob"), ("ARRHYTHMIA", "carol"), ("NORMAL", "dave"), ("MI", "erin"), ("ARRHYTHMIA", "frank")]):
        write_record(src, f"r{k}", ecg_like(25, 360, seed=k), 360, ["II"], comments=[f"label: {label}", f"patient: {patient}"])
    write_record(src, "unlabelled", ecg_like(25, 360, seed=9), 360, ["II"])
    assert pipeline_main(["prepare", "recordings", "--source-dir", str(src), "--out", str(tmp_path / "ds"), "--no-progress"]) == 0
    ds = load_dataset(tmp_path / "ds")
    assert ds.leads == ["II"] and set(ds.label_names) == {"NORMAL", "MI", "ARRHYTHMIA"}
    ours = ds.record == f"recordings:{recording.name}"
    assert ours.sum() == 1 and ds.label_names[ds.y[ours][0]] == "NORMAL" and ds.patient[ours][0] == "recordings:alice"
    assert len(ds) == 1 + 5 * 2 and "recordings:unlabelled" not in set(ds.record)  # 25 s at 10 s windows: 2 each


def test_refusals(tmp_path: Path) -> None:
    missing = _run("/dev/ttyNOSUCH0", tmp_path / "m1", "--seconds", "1")
    assert missing.returncode == 2 and "/dev/ttyNOSUCH0" in missing.stderr
    assert not list(tmp_path.iterdir())  # nothing left behind
    (tmp_path / "m2.hea").write_text("m2 1 250 0\n")
    exists = _run("/dev/ttyNOSUCH0", tmp_path / "m2")
    assert exists.returncode == 2 and "m2.hea exists" in exists.stderr
    bad = _run("/dev/ttyNOSUCH0", tmp_path / "bad.name")
    assert bad.returncode == 2 and "record name" in bad.stderr


def test_lost_samples_are_invalid_and_annotated(tmp_path: Path) -> None:
    """A gap in the sample counter is stored as WFDB invalid samples (NaN) with a 'lost N' note; RESULTs
    wait for the samples of their window."""
    from types import SimpleNamespace

    rec = WfdbRecording(tmp_path / "gap")
    r = SimpleNamespace(window_index=0, status=SimpleNamespace(name="OK"), label=2, logits=(10, -20, 30))
    rec.add_samples(100, np.full(40, 2048), np.zeros(40, bool))
    rec.add_result(r, 100, 50, ("NORMAL", "MI", "ARRHYTHMIA"), (0.1, 0))  # its last sample (149) is not in yet
    assert rec.results == 0
    rec.add_samples(150, np.full(30, 2100), np.r_[np.zeros(10, bool), np.ones(20, bool)])
    assert rec.n == 80 and rec.lost == 10 and rec.results == 1
    rec.flush(250.0, AD8232Config(), ["test"], datetime.now().astimezone())
    rec.close()
    w = wfdb.rdrecord(str(tmp_path / "gap"))
    assert np.isnan(w.p_signal[40:50, 0]).all() and not np.isnan(w.p_signal[:40, 0]).any()
    assert np.fromfile(tmp_path / "gap.dat", dtype="<i2")[45] == INVALID
    ann = wfdb.rdann(str(tmp_path / "gap"), ANN_EXT)
    notes = dict(zip(ann.aux_note, ann.sample))
    assert notes["lost 10"] == 40 and notes["lead_off"] == 60
    result = [a for a in ann.aux_note if a.startswith("result")][0]
    assert "label=ARRHYTHMIA" in result and "logits=10,-20,30" in result and ann.sample[ann.aux_note.index(result)] == 49
    p = np.exp([1.0, -2.0, 3.0]) / np.exp([1.0, -2.0, 3.0]).sum()
    assert f"ARRHYTHMIA:{p[2]:.4f}" in result


@pytest.mark.parametrize("beats", [True, False])
def test_record_board_beats(tmp_path: Path, beats: bool) -> None:
    """The board's beats as `N` annotations at their samples in the record's numbering, read back by wfdb and
    by the pipeline; the other annotations as before. Older firmware (no BEATS capability): no PATH.qrs."""
    from fake_board import DECIDE, FakeBoard

    from pipeline.data.label_rules import is_beat
    from pipeline.data.records import read_annotation

    out = tmp_path / "beats01"
    with FakeBoard(beats=beats, heart_rate=80, lead_off=(12, 2)) as board:
        done = _run(board.port, out, "--seconds", "24")
    assert done.returncode == 0, done.stderr
    n = _kept_samples(done.stdout)
    rec = wfdb.rdrecord(str(out))
    assert rec.sig_len == n == 24 * RATE
    c = _comments(rec)
    origin = int(c["first_sample"].split()[0])
    counts = np.fromfile(f"{out}.dat", dtype="<i2")
    assert np.array_equal(counts, board.counts[origin : origin + n])
    anns = wfdb.rdann(str(out), ANN_EXT)
    assert any(a.startswith("result window=") for a in anns.aux_note) and "lead_off" in anns.aux_note
    if not beats:
        assert not Path(f"{out}.{BEAT_EXT}").exists() and "beats" not in c and "board detected" not in done.stdout
        return
    every = board.beats[(board.beats >= origin) & (board.beats < origin + n)] - origin
    sure = every[every + DECIDE < n]  # their BEATS frame came with samples the record holds
    got = wfdb.rdann(str(out), BEAT_EXT)
    assert set(got.symbol) == {"N"} and got.fs == RATE
    assert set(sure) <= set(got.sample.tolist()) <= set(every) and len(sure) >= 24 * 80 / 60 - 8
    samples, symbols, fs = read_annotation(out, BEAT_EXT)
    assert samples.tolist() == got.sample.tolist() and all(is_beat(x) for x in symbols) and fs == RATE
    assert c["beats"] == f".{BEAT_EXT} (N at each beat the board detected: {got.sample.size})"
    assert f"{got.sample.size} beats the board detected in {out}.{BEAT_EXT}" in done.stdout


def test_board_beats_wait_for_their_samples(tmp_path: Path) -> None:
    """A beat is written once its sample is in the record; beats before the record or never recorded are counted."""
    rec = WfdbRecording(tmp_path / "b")
    rec.add_beats([5])  # nothing recorded yet: no numbering to put it in
    rec.add_samples(100, np.full(50, 2048), np.zeros(50, bool))
    rec.add_beats([90, 120, 160])
    assert rec.beats == [20] and rec.beats_outside == 2
    rec.add_samples(150, np.full(20, 2048), np.zeros(20, bool))
    rec.add_beats([200])
    assert rec.beats == [20, 60]
    rec.flush(250.0, AD8232Config(), ["test"], datetime.now().astimezone())
    rec.close()
    assert rec.beats_outside == 3
    ann = wfdb.rdann(str(tmp_path / "b"), BEAT_EXT)
    assert ann.sample.tolist() == [20, 60] and ann.symbol == ["N", "N"]


class _FillingFile:
    """A raw file on a disk that fills up after `room` bytes: a write takes what fits, then ENOSPC."""

    def __init__(self, real: Any, room: int, full: list[bool]) -> None:
        self.real, self.room, self.full = real, room, full

    def write(self, data: bytes) -> int:
        if self.room <= 0:
            self.full[0] = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        k = self.real.write(bytes(data[: self.room]))
        self.room -= k
        return k

    def close(self) -> None:
        self.real.close()


@pytest.mark.parametrize("what", ["file", "disk"])
def test_write_failure_keeps_a_readable_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], what: str) -> None:
    """PATH.dat stops taking bytes 1501 bytes in (half a sample over 750): the recording ends with an error
    naming PATH.dat, and what was written stays a record wfdb reads. `file`: only PATH.dat fails, so the
    header is rewritten for the 750 whole samples (the half one cut off). `disk`: the disk is full, so
    the header cannot be rewritten either and the last one written (about a second earlier) stays:
    the record is as long as that header says, its samples the sketch's."""
    import host.record as record_module
    from host.cli import main as host_main

    out = tmp_path / "full01"
    room = 1501
    full = [False]
    headers: list[int] = []  # the sample count of every header that reached the disk
    real_open_dat = WfdbRecording._open_dat
    monkeypatch.setattr(WfdbRecording, "_open_dat", lambda self: _FillingFile(real_open_dat(self), room, full))
    real_header = record_module.write_text_atomic

    def header(path: str | Path, text: str) -> Path:
        if what == "disk" and full[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = real_header(path, text)
        headers.append(int(text.split()[3]))
        return written

    monkeypatch.setattr(record_module, "write_text_atomic", header)
    lead_off = (2, 1)
    with TextDevice(rate=RATE, seed=4, lead_off=lead_off, adc_bits=10) as dev:
        code = host_main(["record", "--port", dev.port, "--out", str(out), "--seconds", "20", "--text", "--rate", str(RATE)])
    stdout, stderr = capsys.readouterr()
    assert code == 1 and f"cannot write {out}.dat: No space left on device" in stderr, (stdout, stderr)
    n = _kept_samples(stdout)
    rec = wfdb.rdrecord(str(out))
    assert rec.sig_len == n == headers[-1] and n > 0
    if what == "file":
        assert n == room // 2 and (out.parent / f"{out.name}.dat").stat().st_size == 2 * n
    else:
        assert n <= room // 2 and f"the header on disk describes the first {n} samples" in stderr, stderr
    counts = np.fromfile(f"{out}.dat", dtype="<i2").astype(np.int64)[:n]
    known, known_off = TextSignal(RATE, 72, 4, lead_off, 10).next(n + 40 * RATE)
    s = next(i for i in range(known.size - n + 1) if np.array_equal(known[i : i + 50], counts[:50]))
    assert np.array_equal(counts, known[s : s + n]) and not np.isnan(rec.p_signal).any()
    offs = [(a, b) for a, b in _lead_off_annotations(out)]
    assert offs and all(a < n and (b is None or b < n) for a, b in offs)
    assert not list(tmp_path.glob(".*tmp*")) and not list(tmp_path.glob("*_tmp*")), list(tmp_path.iterdir())
