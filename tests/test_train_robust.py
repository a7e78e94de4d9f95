"""Training for placement and device robustness: a lead pool with polarity flips, patient shares, evaluation on
another lead, and the learning curve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_train import TINY, write_synthetic_set

from pipeline.models.checkpoint import load_checkpoint
from pipeline.cli import main
from pipeline.data.dataset import load_dataset
from pipeline.training.learning_curve import fit_log_line
from pipeline.signal.preprocess import zscore
from pipeline.training.train import FrontalLead, TrainError, Windows, patient_subset


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return write_synthetic_set(tmp_path_factory.mktemp("data") / "three", per_class=12)


def test_lead_pool_draws_every_lead_and_flips(small: Path) -> None:
    ds = load_dataset(small)
    idx = ds.indices("train")
    w = Windows(ds, idx, [1], pool=[0, 1, 2], flip=0.5, seed=3)
    seen_leads, flips = set(), 0
    for epoch in range(4):
        w.epoch = epoch
        for i in range(len(idx)):
            x = w[i][0].numpy()
            assert x.shape == (1, ds.X.shape[-1])
            k = int(idx[i])
            match = [j for j in range(3) for s in (1, -1) if np.array_equal(x[0], s * np.asarray(ds.X[k][j], np.float32))]
            assert match, "a pooled window is one lead of its record, possibly inverted"
            seen_leads.add(match[0])
            flips += int(np.array_equal(x[0], -np.asarray(ds.X[k][match[0]], np.float32)))
    n = 4 * len(idx)
    assert seen_leads == {0, 1, 2} and 0.3 * n < flips < 0.7 * n
    w.epoch = 0
    again = Windows(ds, idx, [1], pool=[0, 1, 2], flip=0.5, seed=3)
    assert all(np.array_equal(w[i][0], again[i][0]) for i in range(len(idx)))  # seeded: runs repeat


def test_frontal_lead_follows_einthoven_and_spans_its_range(small: Path) -> None:
    ds = load_dataset(small)
    rng = np.random.default_rng(0)
    lead_i, lead_ii = rng.standard_normal((2, 500))
    window = np.stack([lead_i, lead_ii, lead_ii - lead_i])  # I, II, III = II - I
    at = {deg: FrontalLead(0, 1, np.deg2rad(deg), np.deg2rad(deg)).draw(window, rng)[0] for deg in (0, 60, 120, 90)}
    np.testing.assert_allclose(at[0], lead_i, atol=1e-5)
    np.testing.assert_allclose(at[60], lead_ii, atol=1e-5)
    np.testing.assert_allclose(at[120], window[2], atol=1e-5)  # III
    np.testing.assert_allclose(at[90], (2 * lead_ii - lead_i) / np.sqrt(3), atol=1e-5)  # aVF scaled to unit gain
    idx = ds.indices("train")
    w = Windows(ds, idx, [1], frontal=FrontalLead(0, 1, 0.0, np.deg2rad(90)), seed=3)
    k = int(idx[0])
    drawn = []
    for epoch in range(12):
        w.epoch = epoch
        x = w[0][0].numpy()
        assert x.shape == (1, ds.X.shape[-1]) and abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2
        drawn.append(x[0])
    two = np.stack([np.asarray(ds.X[k][0], np.float64), np.asarray(ds.X[k][1], np.float64)])
    # each drawn window is a z-scored mix of I and II (least squares leaves no residual), at different angles
    for x in drawn:
        coef, *_ = np.linalg.lstsq(np.vstack([two, np.ones(two.shape[1])]).T, x, rcond=None)
        assert np.abs(np.vstack([two, np.ones(two.shape[1])]).T @ coef - x).max() < 1e-3
    assert len({round(float(np.corrcoef(x, drawn[0])[0, 1]), 6) for x in drawn}) > 6
    assert not np.allclose(zscore(drawn[0][None], 1e-6), zscore(drawn[1][None], 1e-6))


def test_frontal_angle_option_checks_its_input(small: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(small), "--out-dir", str(out), "--lead", "II", "--frontal-angle", "0", "90", *TINY]) == 0
    assert load_checkpoint(out / "checkpoint.pt").leads == ["II"]
    assert main(["train", "--data", str(small), "--out-dir", str(tmp_path / "b1"), "--lead", "II", "--frontal-angle", "90", "0", *TINY]) == 2
    assert "LOW <= HIGH" in capsys.readouterr().err
    assert main(["train", "--data", str(small), "--out-dir", str(tmp_path / "b2"), "--lead", "II", "--frontal-angle", "0", "90",
                 "--lead-pool", "I", "II", *TINY]) == 2  # fmt: skip
    assert "--lead-pool" in capsys.readouterr().err


def test_patient_shares_nest_and_keep_every_label(small: Path) -> None:
    ds = load_dataset(small)
    idx = ds.indices("train")
    quarter, half = patient_subset(ds, idx, 0.25, 13), patient_subset(ds, idx, 0.5, 13)
    assert set(quarter) <= set(half) <= set(idx) and len(quarter) < len(half) < len(idx)
    assert set(ds.y[quarter]) == set(ds.y[idx])
    for sub in (quarter, half):  # whole patients only
        chosen = set(ds.patient[sub])
        assert all((ds.patient[j] in chosen) == (j in set(sub)) for j in idx)
    with pytest.raises(TrainError, match="train fraction"):
        patient_subset(ds, idx, 0.0, 13)


def test_train_with_a_pool_declares_its_lead_and_evaluates_on_another(small: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(small), "--out-dir", str(out), "--lead", "II", "--lead-pool", "I", "II", "III",
                 "--polarity-flip", "0.5", *TINY]) == 0  # fmt: skip
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt.leads == ["II"]
    for lead in ("I", "II"):
        assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(small), "--out-dir", str(tmp_path / lead),
                     "--lead", lead, "--bootstrap", "20", "--no-quality"]) == 0  # fmt: skip
        assert json.loads((tmp_path / lead / "metrics.json").read_text())["data"]["lead"] == lead
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(small), "--out-dir", str(tmp_path / "x"),
                 "--lead", "V9", "--no-quality"]) == 2  # fmt: skip
    assert "lacks lead(s) ['V9']" in capsys.readouterr().err
    assert main(["train", "--data", str(small), "--out-dir", str(tmp_path / "bad"), "--lead", "I", "II", "--lead-pool", "I", "II", *TINY]) == 2
    assert "single-lead" in capsys.readouterr().err


def test_learning_curve_writes_points_fit_and_plot(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "lc"
    assert main(["learning-curve", "--data", str(small), "--out-dir", str(out), "--lead", "II", "--fractions", "0.5", "1",
                 "--predict-at", "10000", "--bootstrap", "20", *TINY]) == 0  # fmt: skip
    r = json.loads((out / "learning_curve.json").read_text())
    n = [p["train_windows"] for p in r["points"]]
    assert [p["fraction"] for p in r["points"]] == [0.5, 1.0] and n[0] < n[1] == len(load_dataset(small).indices("train"))
    assert all(p["ci95"][0] <= p["balanced_accuracy"] <= p["ci95"][1] for p in r["points"])
    slope, intercept = fit_log_line(n, [p["balanced_accuracy"] for p in r["points"]])
    assert r["prediction"]["balanced_accuracy"] == pytest.approx(slope * np.log10(10000) + intercept)
    assert (out / "learning_curve.png").stat().st_size > 5000


def test_log_line_fit() -> None:
    slope, intercept = fit_log_line([100, 1000, 10000], [0.5, 0.6, 0.7])
    assert slope == pytest.approx(0.1) and intercept == pytest.approx(0.3)
    with pytest.raises(ValueError):
        fit_log_line([100], [0.5])
