"""host/host_classifier.py: the device rule applied incrementally on the host.

Fed in random splits, HostClassifier gives exactly `pipeline.signal.device.device_windows` + the model on the
whole stream (float checkpoint and int8 bundle), treats lost samples as lead-off, restarts when the
device does, resamples other rates chunk-invariantly; with a bundle its int8 logits equal the ones the
virtual device reports in its RESULTs for the same live stream.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from export.bundle import read_manifest
from export.bundle_model import BundleModel
from export.protocol_defs import CommandCode, ResultSource
from host.host_classifier import DeviceStream, HostClassifier, StreamResampler, WindowResult
from host.sources import Block
from pipeline.signal.ad8232 import AD8232Config, Disturbances, to_adc
from pipeline.models.checkpoint import load_checkpoint
from pipeline.signal.device_rule import WindowStatus
from pipeline.signal.device import device_windows
from pipeline.inference.device_path import CheckpointModel, device_answers
from pipeline.signal.preprocess import resample
from pipeline.signal.quality import QualityStatus
from pipeline.signal.spec import PreprocessSpec
from pipeline.data.synthetic import simulate_ecg

ADC = AD8232Config()


def _stream(seconds: float, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """AD8232 counts (12-bit) of a synthetic NORMAL ECG with one lead-off stretch and a saturated one."""
    rng = np.random.default_rng(seed)
    x = simulate_ecg("NORMAL", seconds, 250, rng)
    raw, off = to_adc(x, 250, rng, ADC, Disturbances(lead_off_prob=0.0))
    raw = raw.astype(np.int32)
    off = off.copy()
    off[4000:4300] = True
    raw[off] = ADC.max_count
    raw[9000:9100] = 0  # 100 samples at the low rail: a SATURATED window or two
    return raw, off


def _blocks(raw: np.ndarray, off: np.ndarray, seed: int, start: int = 0) -> list[Block]:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < raw.size:
        n = int(rng.integers(1, 400))
        out.append(Block(start + i, raw[i : i + n], off[i : i + n], 0.0))
        i += n
    return out


def _feed(clf: HostClassifier, blocks: list[Block]) -> list[WindowResult]:
    return [r for b in blocks for r in clf.feed(b)]


@pytest.fixture(scope="module")
def checkpoint(demo_bundle: tuple[Path, Path]) -> Path:
    return demo_bundle[1].parent / "train" / "checkpoint.pt"


def _checkpoint_statuses(ckpt, raw: np.ndarray, off: np.ndarray) -> list[tuple[int, int, int]]:
    """(index, start, status) of every window as a checkpoint with its quality rule and threshold answers."""
    return [(w.index, w.start, int(w.status)) for w in device_answers(raw, off, ckpt.spec, ADC.max_count, CheckpointModel(ckpt))]


def test_checkpoint_stream_equals_whole(checkpoint: Path) -> None:
    raw, off = _stream(40)
    ckpt = load_checkpoint(checkpoint)
    ref = device_answers(raw, off, ckpt.spec, ADC.max_count, CheckpointModel(ckpt))
    got = _feed(HostClassifier.load(checkpoint), _blocks(raw, off, seed=1))
    assert [(r.window_index, r.first_sample, int(r.status)) for r in got] == [(w.index, w.start, int(w.status)) for w in ref]
    statuses = {QualityStatus.OK if w.classified else w.status for w in ref}
    assert {WindowStatus.OK, WindowStatus.LEAD_OFF, WindowStatus.SATURATED} <= statuses, statuses
    by_index = {r.window_index: r for r in got}
    for w in ref:
        if not w.classified:
            continue
        r = by_index[w.index]
        assert r.label == ckpt.label_names[int(w.probabilities.argmax())]
        assert r.int8_logits is None
        np.testing.assert_allclose([r.probabilities[n] for n in ckpt.label_names], w.probabilities, rtol=0, atol=1e-6)
    for r in got:
        assert (r.probabilities is None) == (r.status not in (QualityStatus.OK, QualityStatus.LOW_CONFIDENCE))


def test_bundle_stream_equals_whole_int8(demo_bundle: tuple[Path, Path]) -> None:
    bundle = demo_bundle[1]
    manifest = read_manifest(bundle)
    model = BundleModel.load(bundle)
    out_q = model.out_q
    raw, off = _stream(40, seed=5)
    ref = device_answers(raw, off, model.spec, ADC.max_count, model)
    ok = [w for w in ref if w.logits is not None]
    clf = HostClassifier.load(bundle)
    assert clf.kind == "bundle" and clf.label_names == tuple(manifest["labels"])
    got = {r.window_index: r for r in _feed(clf, _blocks(raw, off, seed=2))}
    assert sorted(got) == [w.index for w in ref]
    assert [int(got[w.index].status) for w in ref] == [int(w.status) for w in ref]
    for w in ok:
        logits = w.logits
        r = got[w.index]
        assert r.int8_logits == tuple(int(v) for v in logits)
        deq = (logits.astype(np.float64) - out_q[1]) * out_q[0]
        p = np.exp(deq - deq.max()) / np.exp(deq - deq.max()).sum()
        np.testing.assert_allclose([r.probabilities[n] for n in clf.label_names], p, atol=1e-12)
        assert r.label == clf.label_names[int(np.argmax(logits))]


def test_lost_samples_are_lead_off_and_late_start(checkpoint: Path) -> None:
    """A gap in the sample counter counts as lead-off (as on the device); a stream joined at sample 700
    reports windows from the first one starting after it; a counter that goes back restarts the stream."""
    raw, off = _stream(30, seed=7)
    spec = load_checkpoint(checkpoint).spec
    gap = slice(5000, 5050)
    blocks = [b for b in _blocks(raw, off, seed=3) if b.first_sample + b.values.size <= gap.start or b.first_sample >= gap.stop]
    assert sum(b.values.size for b in blocks) < raw.size
    filled_raw, filled_off = raw.copy(), off.copy()
    covered = np.zeros(raw.size, dtype=bool)
    for b in blocks:
        covered[b.first_sample : b.first_sample + b.values.size] = True
    filled_off[~covered] = True
    filled_raw[~covered] = ADC.max_count
    ckpt = load_checkpoint(checkpoint)
    got = _feed(HostClassifier.load(checkpoint), blocks)
    assert [(r.window_index, r.first_sample, int(r.status)) for r in got] == _checkpoint_statuses(ckpt, filled_raw, filled_off)
    assert any(r.status == WindowStatus.LEAD_OFF and r.first_sample <= gap.start < r.first_sample + spec.window for r in got)

    late = HostClassifier.load(checkpoint)
    got = _feed(late, _blocks(raw[700:], off[700:], seed=4, start=700))
    assert got[0].window_index == 2 and got[0].first_sample == 2 * spec.device_hop
    ref = _checkpoint_statuses(ckpt, raw[1250:], off[1250:])
    assert [int(r.status) for r in got] == [status for _, _, status in ref]

    clf = HostClassifier.load(checkpoint)
    first = _feed(clf, _blocks(raw, off, seed=5))
    again = _feed(clf, _blocks(raw, off, seed=6))  # the counter went back to 0: a new session
    assert [(r.window_index, r.status, r.label) for r in again] == [(r.window_index, r.status, r.label) for r in first]


def test_resampling_is_chunk_invariant_and_matches_resample_poly(checkpoint: Path) -> None:
    rng = np.random.default_rng(0)
    x = 2048 + np.cumsum(rng.normal(0, 3, 6000))
    for fs_in in (500, 360, 200):
        whole, whole_off = StreamResampler(fs_in, 250).push(x, np.zeros(x.size, dtype=bool))
        parts = []
        res = StreamResampler(fs_in, 250)
        for b in _blocks(x, np.zeros(x.size, dtype=bool), seed=fs_in):
            parts.append(res.push(b.values, b.lead_off)[0])
        assert np.array_equal(np.concatenate(parts), whole)
        ref = resample(x, fs_in, 250)
        mid = slice(100, whole.size - 100)
        np.testing.assert_allclose(whole[mid], ref[mid], atol=1e-9)
        assert not whole_off.any()
    # a lead-off stretch marks the output samples whose FIR taps touch it, and no others far from it
    off = np.zeros(x.size, dtype=bool)
    off[2000:2500] = True
    _, y_off = StreamResampler(500, 250).push(x, off)
    assert y_off[1000:1250].all() and not y_off[:950].any() and not y_off[1300:].any()

    # the classifier at 500 Hz: the device rule on the resampled stream
    raw, lo = _stream(30, seed=9)
    up = np.clip(np.rint(resample(raw.astype(np.float64), 250, 500)), 0, ADC.max_count).astype(np.int32)
    up_off = np.repeat(lo, 2)
    clf = HostClassifier.load(checkpoint, rate_hz=500)
    got = _feed(clf, _blocks(up, up_off, seed=8))
    y, y_off = StreamResampler(500, 250).push(up, up_off)
    ref = device_windows(np.clip(y, 0, ADC.max_count), y_off, clf.spec, ADC.max_count)
    answered = {QualityStatus.OK, QualityStatus.LOW_CONFIDENCE}  # the threshold is checked above; here the device rule
    assert [(r.window_index, r.first_sample, WindowStatus.OK if r.status in answered else r.status) for r in got] == [
        (w.index, w.start, w.status) for w in ref
    ]
    assert sum(r.status in answered for r in got) >= 2


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such checkpoint file or bundle"):
        HostClassifier.load(tmp_path / "absent.pt")
    with pytest.raises(Exception, match="manifest.json"):
        HostClassifier.load(tmp_path)
    stream = DeviceStream(PreprocessSpec(), 1023)
    with pytest.raises(ValueError, match="ADC range"):
        stream.push(0, np.array([2000]), np.array([False]))


def test_device_results_equal_host_int8(demo_bundle: tuple[Path, Path], device_cache: Path) -> None:
    """The virtual device's live stream (synthetic AD8232 signal, from a RESET): each RESULT's status and
    int8 logits equal the host classifier's for the same window."""
    from host.devices import simulate
    from host.link import DeviceLink

    bundle = demo_bundle[1]
    clf = HostClassifier.load(bundle)
    host: dict[int, WindowResult] = {}
    device = []
    with simulate(bundle, work=device_cache) as dev, DeviceLink(dev.port) as link:
        info = link.get_info(timeout=5)
        assert clf.mismatch(info) is None
        assert "spec" in HostClassifier.load(bundle.parent / "train" / "checkpoint.pt").mismatch(
            type("I", (), {"spec_fingerprint": bytes(8), "model_sha256": bytes(32)})())
        link.command(CommandCode.RESET)
        started = False

        def on_samples(msg) -> None:
            nonlocal started
            started = started or msg.first_sample == 0
            if started:
                b = Block(msg.first_sample, np.asarray(msg.values, np.int32), np.asarray(msg.lead_off or [False] * len(msg.values), bool), 0.0)
                host.update({r.window_index: r for r in clf.feed(b)})

        link.on_samples = on_samples
        link.on_result = lambda r: device.append(r) if started and r.source == ResultSource.LIVE else None
        deadline = time.monotonic() + 25
        while sum(r.status == WindowStatus.OK for r in device) < 3 and time.monotonic() < deadline:
            link.poll(0.2)
        assert link.stats.samples_lost == 0
    ok = [r for r in device if r.status == WindowStatus.OK]
    assert len(ok) >= 3, device
    for r in device:
        mine = host[r.window_index]
        assert (mine.first_sample, mine.status) == (r.first_sample, r.status)
        if r.status == WindowStatus.OK:
            assert mine.int8_logits == tuple(r.logits), (r, mine)
            assert mine.label == clf.label_names[r.label]
