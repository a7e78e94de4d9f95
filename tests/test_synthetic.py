"""Tests of the synthetic ECG generator and the synthetic WFDB data set."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import neurokit2 as nk
import numpy as np
import pytest
import wfdb

from pipeline.data import synthetic
from pipeline.signal.ad8232 import AD8232Config
from pipeline.data.labels import LABELS
from pipeline.data.synthetic import sample_patient, simulate_ecg, simulate_ecg_annotated

matplotlib.use("Agg")

FS = 250
NORMAL, MI, ARRHYTHMIA = LABELS


def _rr(x: np.ndarray, fs: float = FS) -> np.ndarray:
    """RR intervals (s) from an independent R-peak detector."""
    _, info = nk.ecg_peaks(x, sampling_rate=fs)
    return np.diff(info["ECG_R_Peaks"]) / fs


def _beats(ecg: synthetic.SyntheticECG, kind: str = "N") -> np.ndarray:
    r = ecg.r_samples[ecg.beat_kinds == kind]
    return r[(r > 0.45 * ecg.fs) & (r < ecg.signal.size - 0.5 * ecg.fs)]


def _segment(ecg: synthetic.SyntheticECG, r: np.ndarray, a_s: float, b_s: float) -> np.ndarray:
    a, b = int(round(a_s * ecg.fs)), int(round(b_s * ecg.fs))
    return np.array([ecg.signal[i + a:i + b] for i in r])


def _st_and_q(ecg: synthetic.SyntheticECG) -> tuple[float, float]:
    """Median ST level (R+60..100 ms) and Q depth, relative to the PR segment (R-100..-70 ms)."""
    r = _beats(ecg)
    iso = np.median(_segment(ecg, r, -0.10, -0.07), axis=1)
    st = np.mean(_segment(ecg, r, 0.06, 0.10), axis=1) - iso
    q = iso - np.min(_segment(ecg, r, -0.06, 0.0), axis=1)
    return float(np.median(st)), float(np.median(q))


def _patients(label: str, kind: str | None, n: int, start: int = 0, **match: object) -> list:
    """`n` 30 s records of seeded patients (optionally only those whose fields equal `match`)."""
    out, seed = [], start
    while len(out) < n:
        rng = np.random.default_rng(seed)
        patient = sample_patient(label, rng, f"p{seed}", kind=kind)
        if all(getattr(patient, k) == v for k, v in match.items()):
            out.append(simulate_ecg_annotated(label, 30.0, FS, rng, patient))
        seed += 1
    return out


def test_shape_dtype_and_validation() -> None:
    for label in LABELS:
        x = simulate_ecg(label, 10.0, FS, np.random.default_rng(0))
        assert x.shape == (2500,) and x.dtype == np.float64 and np.all(np.isfinite(x))
    assert simulate_ecg(NORMAL, 2.0, 500, np.random.default_rng(0)).shape == (1000,)
    assert simulate_ecg(NORMAL, 0.5, 100, np.random.default_rng(0)).shape == (50,)
    with pytest.raises(ValueError):
        simulate_ecg("AF", 10.0, FS, np.random.default_rng(0))
    mi_patient = sample_patient(MI, np.random.default_rng(0))
    with pytest.raises(ValueError):
        simulate_ecg(NORMAL, 10.0, FS, np.random.default_rng(0), mi_patient)


def test_deterministic_for_a_seed() -> None:
    for label in LABELS:
        a = simulate_ecg(label, 10.0, FS, np.random.default_rng(5))
        b = simulate_ecg(label, 10.0, FS, np.random.default_rng(5))
        c = simulate_ecg(label, 10.0, FS, np.random.default_rng(6))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_amplitudes_fit_the_front_end() -> None:
    for label in LABELS:
        for seed in range(5):
            x = simulate_ecg(label, 10.0, FS, np.random.default_rng(seed))
            assert 0.3 < np.max(np.abs(x)) < 1.5  # mV; the AD8232 + 12-bit ADC range is +-1.5 mV


def test_normal_heart_rate_in_range_and_mild_hrv() -> None:
    for ecg in _patients(NORMAL, None, 8):
        rr = _rr(ecg.signal)
        assert 55 <= 60 / rr.mean() <= 100
        assert 60 / rr.max() >= 50 and 60 / rr.min() <= 110
        assert 0.005 < rr.std() / rr.mean() < 0.08
        assert set(ecg.beat_kinds) == {"N"}


def test_af_rr_variability_clearly_higher_than_normal() -> None:
    cv_normal = [np.std(rr) / np.mean(rr) for rr in (_rr(e.signal) for e in _patients(NORMAL, None, 6))]
    cv_af = [np.std(rr) / np.mean(rr) for rr in (_rr(e.signal) for e in _patients(ARRHYTHMIA, "af", 6))]
    assert min(cv_af) > 2 * max(cv_normal)
    assert min(cv_af) > 0.1


def test_af_has_no_p_waves_normal_has() -> None:
    def locked_fraction(ecg: synthetic.SyntheticECG) -> float:
        """Share of the pre-QRS window's variance that is time-locked to the QRS (P waves are)."""
        segs = _segment(ecg, _beats(ecg), -0.25, -0.06)
        return float(np.var(segs.mean(axis=0)) / np.mean(np.var(segs, axis=1)))

    assert min(locked_fraction(e) for e in _patients(NORMAL, None, 5)) > 0.9
    assert max(locked_fraction(e) for e in _patients(ARRHYTHMIA, "af", 5)) < 0.5


def test_mi_st_elevation_or_q_depth_differs_from_normal() -> None:
    normal = [_st_and_q(e) for e in _patients(NORMAL, None, 8)]
    st_n, q_n = max(s for s, _ in normal), max(q for _, q in normal)
    for kind in synthetic.MI_PATTERNS:
        for st, q in (_st_and_q(e) for e in _patients(MI, kind, 4, start=100)):
            assert q > q_n + 0.1  # pathological Q in every MI patient
            if kind in ("acute", "evolving"):
                assert st > st_n + 0.08


def test_mi_patterns_vary_and_old_mi_has_inverted_t() -> None:
    kinds = {sample_patient(MI, np.random.default_rng(s)).kind for s in range(30)}
    assert kinds == set(synthetic.MI_PATTERNS)
    ecg = _patients(MI, "old", 1)[0]
    t_wave = _segment(ecg, _beats(ecg), 0.15, 0.35).mean(axis=0)
    assert t_wave.min() < -0.1


def test_pvcs_are_early_wide_and_followed_by_compensatory_pause() -> None:
    for ecg in _patients(ARRHYTHMIA, "pvc", 4, pvc_bigeminy=False):
        kinds, r = ecg.beat_kinds, ecg.r_samples
        assert 0.1 < np.mean(kinds == "V") < 0.6
        v = np.flatnonzero(kinds == "V")
        v = v[(v > 1) & (v < len(kinds) - 1)]
        v = v[(kinds[v - 1] == "N") & (kinds[v - 2] == "N") & (kinds[v + 1] == "N")]
        assert v.size > 0
        sinus_rr = r[v - 1] - r[v - 2]
        assert np.all(r[v] - r[v - 1] < 0.75 * sinus_rr)  # premature
        np.testing.assert_allclose(r[v + 1] - r[v - 1], 2 * sinus_rr, rtol=0.15)  # compensatory

        def qrs_width(kind: str) -> float:
            beat = np.abs(_segment(ecg, _beats(ecg, kind), -0.15, 0.15).mean(axis=0))
            return float(np.sum(beat > beat.max() / 2) / FS)

        assert qrs_width("V") > 2 * qrs_width("N")
        assert qrs_width("V") > 0.04


def test_bigeminy_alternates() -> None:
    ecg = _patients(ARRHYTHMIA, "pvc", 1, pvc_bigeminy=True)[0]
    kinds = "".join(ecg.beat_kinds)
    assert "NN" not in kinds and "VV" not in kinds and kinds.count("V") >= 10


def test_arrhythmia_kinds_mix() -> None:
    kinds = {sample_patient(ARRHYTHMIA, np.random.default_rng(s)).kind for s in range(40)}
    assert kinds == set(synthetic.ARRHYTHMIA_KINDS)


def _read(db: Path, name: str) -> tuple[wfdb.Record, wfdb.Record]:
    return wfdb.rdrecord(str(db / name)), wfdb.rdrecord(str(db / name), physical=False)


def test_database_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "syn"
    names = synthetic.write_synthetic_database(db, n_patients_per_class=2, duration_s=10.0, seed=3,
                                               progress=False)
    assert names == [f"syn_{lab.lower()}_{i:03d}_0" for lab in LABELS for i in range(2)]
    assert (db / "RECORDS").read_text().split() == names
    assert "not clinical" in (db / "README.txt").read_text().lower()
    cfg = AD8232Config()
    for name in names:
        phys, dig = _read(db, name)
        assert phys.sig_name == ["II"] and phys.units == ["mV"] and phys.fs == FS
        assert phys.fmt == ["16"] and phys.adc_res == [12] and phys.baseline == [2048]
        assert phys.p_signal.shape == (2500, 1)
        d = dig.d_signal[:, 0]
        assert d.min() >= 0 and d.max() <= 4095 and d.std() > 10
        np.testing.assert_allclose(phys.p_signal[:, 0], (d - cfg.offset_counts) / cfg.counts_per_mv,
                                   atol=1e-6)
        meta = dict(c.split(": ", 1) for c in phys.comments)
        assert meta["label"] in LABELS and name.startswith(meta["patient"] + "_")
        assert meta["patient"] == f"syn_{meta['label'].lower()}_{name.split('_')[2]}"
        assert meta["generator"] == "ecg-edge synthetic v1 seed=3"
        assert 0 <= int(meta["lead_off_samples"]) <= np.sum(d == 4095)  # lead-off rails high
    assert not list(tmp_path.glob("*tmp*"))


def test_database_without_disturbances_keeps_the_ecg(tmp_path: Path) -> None:
    db = tmp_path / "clean"
    names = synthetic.write_synthetic_database(db, n_patients_per_class=1, duration_s=10.0,
                                               disturbances=False, progress=False)
    for name in names:
        phys, _ = _read(db, name)
        x = phys.p_signal[:, 0]
        assert "lead_off_samples: 0" in phys.comments
        assert 0.3 < np.ptp(x) < 3.0  # mV-scale ECG, not counts
        assert len(_rr(x)) >= 5


def test_database_is_byte_identical_and_replaced_atomically(tmp_path: Path) -> None:
    kwargs = dict(n_patients_per_class=2, records_per_patient=2, duration_s=5.0, progress=False)
    a = synthetic.write_synthetic_database(tmp_path / "a", seed=7, **kwargs)
    b = synthetic.write_synthetic_database(tmp_path / "b", seed=7, **kwargs)
    c = synthetic.write_synthetic_database(tmp_path / "c", seed=8, **kwargs)
    assert a == b == c and len(a) == 12
    for name in a:
        dat_a = (tmp_path / "a" / f"{name}.dat").read_bytes()
        assert dat_a == (tmp_path / "b" / f"{name}.dat").read_bytes()
        assert (tmp_path / "a" / f"{name}.hea").read_bytes() == (tmp_path / "b" / f"{name}.hea").read_bytes()
    assert any((tmp_path / "a" / f"{n}.dat").read_bytes() != (tmp_path / "c" / f"{n}.dat").read_bytes() for n in a)
    # Rewriting into an existing directory replaces it: stale files disappear.
    (tmp_path / "a" / "stale.txt").write_text("old")
    synthetic.write_synthetic_database(tmp_path / "a", seed=7, **kwargs)
    assert not (tmp_path / "a" / "stale.txt").exists()
    assert (tmp_path / "a" / f"{a[0]}.dat").read_bytes() == (tmp_path / "b" / f"{a[0]}.dat").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_patient_identity_does_not_depend_on_set_size(tmp_path: Path) -> None:
    small = synthetic.write_synthetic_database(tmp_path / "s", n_patients_per_class=1, duration_s=5.0,
                                               progress=False)
    synthetic.write_synthetic_database(tmp_path / "l", n_patients_per_class=3, duration_s=5.0,
                                       progress=False)
    for name in small:
        assert (tmp_path / "s" / f"{name}.dat").read_bytes() == (tmp_path / "l" / f"{name}.dat").read_bytes()


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_write_record", boom)
    with pytest.raises(RuntimeError):
        synthetic.write_synthetic_database(tmp_path / "db", n_patients_per_class=1, duration_s=2.0,
                                           progress=False)
    assert list(tmp_path.iterdir()) == []


def test_plot_examples_png(tmp_path: Path) -> None:
    png = synthetic.plot_examples(tmp_path / "examples.png", seed=0)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
