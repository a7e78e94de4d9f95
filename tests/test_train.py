"""Training, checkpoints, distillation, two-stage inference, evaluation and prediction on small data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.models.checkpoint import CheckpointError, load_checkpoint, read_payload, save_atomic
from pipeline.cli import main
from pipeline.data.dataset import DatasetWriter, load_dataset
from pipeline.inference.classifiers import Single, combine_two_stage
from pipeline.data.labels import LABELS
from pipeline.signal.preprocess import preprocess_signal
from pipeline.signal.spec import PreprocessSpec
from pipeline.data.synthetic import simulate_ecg

LEADS = ["I", "II", "III"]
GAINS = {"I": 0.6, "II": 1.0, "III": -0.4}  # crude projections of one dipole


def write_synthetic_set(out: Path, labels: tuple[str, ...] = LABELS, per_class: int = 8, seconds: float = 20.0, drop: str | None = None) -> Path:
    """A small multi-lead data set straight from the generator (train/val/test by patient)."""
    spec = PreprocessSpec()
    rng = np.random.default_rng(0)
    with DatasetWriter(out, spec) as w:
        for c, label in enumerate(labels):
            gen_label = {"SINUS": "NORMAL"}.get(label, label)
            for p in range(per_class):
                split = "train" if p < per_class - 3 else "val" if p < per_class - 1 else "test"
                if drop == label and split == "test":
                    split = "val"
                mv = simulate_ecg(gen_label, seconds, 250, rng)
                x = np.stack([GAINS[lead] * mv + 0.02 * rng.standard_normal(len(mv)) for lead in LEADS])
                X, starts = preprocess_signal(x, 250, spec)
                w.add(X, np.full(len(X), c), f"syn:{label}:{p}", f"syn:{label}:{p}", starts, split)
        cols = w.columns()
        return w.finish(cols, np.arange(w.n), {"label_set": "test", "label_names": list(labels), "leads": LEADS})


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return write_synthetic_set(tmp_path_factory.mktemp("data") / "three")


TINY = ["--model", "mcu", "--epochs", "3", "--batch-size", "16", "--lr", "3e-3", "--patience", "0", "--no-progress"]


@pytest.fixture(scope="module")
def trained(small, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", str(small), "--out-dir", str(out), "--lead", "II", "--augment", "--mixup", "0.2", *TINY]) == 0
    return out


def test_training_writes_everything_and_lowers_loss(trained):
    history = json.loads((trained / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert (trained / "learning_curve.png").stat().st_size > 1000
    ck = load_checkpoint(trained / "checkpoint.pt")
    assert ck.leads == ["II"] and ck.label_names == LABELS and ck.spec == PreprocessSpec()
    assert ck.dataset["sha256"] and ck.train_config["augment"] is True and ck.train_config["mixup"] == 0.2


def test_checkpoint_rebuilds_identical_model(trained, small):
    ck = load_checkpoint(trained / "checkpoint.pt")
    again = load_checkpoint(trained / "checkpoint.pt")
    x = torch.from_numpy(np.array(load_dataset(small).X[:5, 1:2]))
    with torch.no_grad():
        assert torch.equal(ck.model(x), again.model(x))
    assert ck.model is not again.model


def test_deterministic_for_a_seed(small, tmp_path):
    runs = []
    for name in ("a", "b"):
        assert main(["train", "--data", str(small), "--out-dir", str(tmp_path / name), "--lead", "II", "--augment", "--balanced-sampler", *TINY[:-5], "--epochs", "2", "--patience", "0", "--no-progress"]) == 0
        runs.append(read_payload(tmp_path / name / "last.pt")["state_dict"])
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_resume_continues(small, tmp_path):
    args = ["train", "--data", str(small), "--out-dir", str(tmp_path), "--lead", "II", *TINY[:-5], "--patience", "0", "--no-progress"]
    assert main([*args, "--epochs", "2", "--ema", "0.9"]) == 0
    assert main([*args, "--epochs", "3", "--ema", "0.9", "--resume"]) == 0
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())] == [1, 2, 3]
    with pytest.raises(CheckpointError, match="another data set or model"):
        from pipeline.training.train import TrainConfig, train

        train(TrainConfig(model="ecgnet", leads=["II"], epochs=4), small, tmp_path, resume=True, progress=False)
    # the saved weights are the moving average, not the last step's
    last = read_payload(tmp_path / "last.pt")
    assert any(not torch.equal(last["state_dict"][k], last["trained_state_dict"][k]) for k in last["state_dict"] if k.endswith("weight"))


def test_init_starts_from_a_checkpoint_and_refuses_one_that_does_not_fit(small, trained, tmp_path, capsys):
    init = trained / "checkpoint.pt"
    args = ["train", "--data", str(small), "--lead", "II", "--model", "mcu", "--epochs", "1", "--lr", "0", "--ema", "0", "--no-augment", "--no-progress"]
    assert main([*args, "--out-dir", str(tmp_path / "tuned"), "--init", str(init)]) == 0
    assert main([*args, "--out-dir", str(tmp_path / "fresh")]) == 0
    start, tuned, fresh = (read_payload(p)["state_dict"] for p in (init, tmp_path / "tuned/checkpoint.pt", tmp_path / "fresh/checkpoint.pt"))
    conv = [k for k in start if k.endswith("weight") and start[k].dim() == 3]
    assert conv and all(torch.equal(start[k], tuned[k]) for k in conv)  # lr 0: still the init's weights
    assert not all(torch.equal(start[k], fresh[k]) for k in conv)
    assert load_checkpoint(tmp_path / "tuned/checkpoint.pt").train_config["init"]["path"] == str(init)
    assert main(["train", "--data", str(small), "--out-dir", str(tmp_path / "three"), "--epochs", "1", "--init", str(init), "--no-progress"]) != 0
    assert "does not fit this run: in_leads 1 (this run: 3)" in capsys.readouterr().err
    assert not (tmp_path / "three" / "checkpoint.pt").exists()


def test_distillation_runs(small, tmp_path):
    teacher = tmp_path / "teacher"
    assert main(["train", "--data", str(small), "--out-dir", str(teacher), "--model", "ecgnet", "--epochs", "2", "--patience", "0", "--no-progress"]) == 0
    assert load_checkpoint(teacher / "checkpoint.pt").leads == LEADS
    student = tmp_path / "student"
    assert main(["distill", "--teacher", str(teacher / "checkpoint.pt"), "--data", str(small), "--lead", "II", "--out-dir", str(student),
                 "--epochs", "2", "--temperature", "3", "--alpha", "0.3", "--patience", "0", "--no-progress"]) == 0
    ck = load_checkpoint(student / "checkpoint.pt")
    assert ck.leads == ["II"] and ck.train_config["teacher"]["leads"] == LEADS and ck.train_config["alpha"] == 0.3
    hist = json.loads((student / "history.json").read_text())
    assert len(hist) == 2 and all(np.isfinite(h["train_loss"]) for h in hist)


def test_two_stage_combination():
    p1 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])  # SINUS, ARRHYTHMIA
    p2 = np.array([[0.3, 0.7], [0.9, 0.1], [0.5, 0.5]])  # NORMAL, MI
    out = combine_two_stage(p1, p2)
    assert np.allclose(out, [[0.27, 0.63, 0.1], [0.18, 0.02, 0.8], [0.3, 0.3, 0.4]])
    assert np.allclose(out.sum(1), 1) and [LABELS[i] for i in out.argmax(1)] == ["MI", "ARRHYTHMIA", "ARRHYTHMIA"]


def test_two_stage_evaluate_and_predict(tmp_path, small, capsys):
    s1 = write_synthetic_set(tmp_path / "s1", labels=("SINUS", "ARRHYTHMIA"))
    s2 = write_synthetic_set(tmp_path / "s2", labels=("NORMAL", "MI"))
    for name, data in (("m1", s1), ("m2", s2)):
        assert main(["train", "--data", str(data), "--out-dir", str(tmp_path / name), "--lead", "II", *TINY]) == 0
    stages = [str(tmp_path / "m1" / "checkpoint.pt"), str(tmp_path / "m2" / "checkpoint.pt")]
    assert main(["evaluate", "--two-stage", *stages, "--data", str(small), "--out-dir", str(tmp_path / "ev"), "--bootstrap", "50"]) == 0
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(report["per_class_recall"]) == set(LABELS) and (tmp_path / "ev" / "confusion_matrix.png").exists()
    assert np.sum(report["confusion_matrix"]) == report["n_windows"] == int((load_dataset(small).split == "test").sum())
    csv = tmp_path / "sig.csv"
    np.savetxt(csv, simulate_ecg("NORMAL", 25, 360, np.random.default_rng(1)))
    assert main(["predict", "--two-stage", *stages, "--input", str(csv), "--input-rate", "360", "--out", str(tmp_path / "p.json")]) == 0
    result = json.loads((tmp_path / "p.json").read_text())
    assert [w["start_s"] for w in result["windows"]] == [0.0, 10.0]
    assert all(abs(sum(w["probabilities"].values()) - 1) < 1e-5 for w in result["windows"])


def test_evaluate_single_matches_model(trained, small, tmp_path):
    assert main(["evaluate", "--checkpoint", str(trained / "checkpoint.pt"), "--data", str(small), "--out-dir", str(tmp_path), "--bootstrap", "100"]) == 0
    report = json.loads((tmp_path / "metrics.json").read_text())
    ds = load_dataset(small)
    idx = ds.indices("test")
    probs = Single(load_checkpoint(trained / "checkpoint.pt")).predict_proba(np.asarray(ds.X[idx]), ds.leads)
    pred = probs.argmax(1)
    cm = np.zeros((3, 3), int)
    for t, p in zip(ds.y[idx], pred):
        cm[t, p] += 1
    assert report["confusion_matrix"] == cm.tolist()
    for key in ("per_class_recall", "balanced_accuracy", "macro_auc", "confusion_matrix", "ci95"):
        assert key in report


# --- bad input ---------------------------------------------------------------------------


def test_corrupt_and_mismatched_checkpoints(trained, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes((trained / "checkpoint.pt").read_bytes()[:500])
    with pytest.raises(CheckpointError, match="bad.pt: not a readable checkpoint"):
        load_checkpoint(bad)
    obj = read_payload(trained / "checkpoint.pt")
    obj["model"] = {"name": "ecgnet", "kwargs": {"in_leads": 1, "n_classes": 3}}
    save_atomic(obj, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: weights do not fit model 'ecgnet'"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "foreign.pt"), "--data", str(trained), "--out-dir", str(tmp_path / "x")]) == 2
    assert "foreign.pt: not an ecg-edge checkpoint" in capsys.readouterr().err


def test_label_missing_from_test_split(trained, tmp_path, capsys):
    data = write_synthetic_set(tmp_path / "nomi", drop="MI", per_class=4, seconds=10)
    assert main(["evaluate", "--checkpoint", str(trained / "checkpoint.pt"), "--data", str(data), "--out-dir", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "MI" in err and "test" in err and not (tmp_path / "e" / "metrics.json").exists()


def test_predict_bad_inputs(trained, tmp_path, capsys):
    ck = str(trained / "checkpoint.pt")
    nan = tmp_path / "nan.npy"
    x = np.zeros(5000)
    x[1234] = np.nan
    np.save(nan, x)
    assert main(["predict", "--checkpoint", ck, "--input", str(nan), "--input-rate", "250"]) == 2
    assert "nan.npy: NaN samples at index 1234" in capsys.readouterr().err
    short = tmp_path / "short.csv"
    np.savetxt(short, np.zeros(700))
    assert main(["predict", "--checkpoint", ck, "--input", str(short), "--input-rate", "100"]) == 2
    assert "short.csv: 700 samples at 100.0 Hz is shorter than one 10 s window (1000 samples)" in capsys.readouterr().err


def test_ddp_two_processes_match_single(small, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun not found"
    args = ["--data", str(small), "--lead", "II", "--epochs", "3", "--batch-size", "16", "--lr", "3e-3", "--patience", "0", "--no-progress", "--seed", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "pipeline.cli", "train", "--out-dir", str(tmp_path / "ddp"), *args],
                   check=True, env=env, capture_output=True, timeout=300)
    assert main(["train", "--out-dir", str(tmp_path / "one"), *args]) == 0
    ddp, one = read_payload(tmp_path / "ddp" / "last.pt"), read_payload(tmp_path / "one" / "last.pt")
    assert ddp["train_config"]["world_size"] == 2 and one["train_config"]["world_size"] == 1
    assert {k: v.shape for k, v in ddp["state_dict"].items()} == {k: v.shape for k, v in one["state_dict"].items()}
    hist = ddp["run_state"]["history"]
    assert len(hist) == 3 and hist[-1]["train_loss"] < hist[0]["train_loss"]


def test_logit_bias_fit_and_fold(trained, small, tmp_path):
    from pipeline.training.calibrate import balanced_accuracy_of, fit_logit_bias

    logits = np.array([[2.0, 1.5, 0.0], [2.0, 1.6, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.2]])
    y = np.array([1, 1, 2, 0])
    bias = fit_logit_bias(logits, y)
    assert balanced_accuracy_of(logits, y, 3) < 1.0 == balanced_accuracy_of(logits + bias, y, 3) and bias[0] == 0
    out = tmp_path / "cal.pt"
    assert main(["calibrate", "--checkpoint", str(trained / "checkpoint.pt"), "--data", str(small), "--out", str(out)]) == 0
    cal, raw = load_checkpoint(out), load_checkpoint(trained / "checkpoint.pt")
    b = np.array(cal.extra["calibration"]["logit_bias"])
    x = torch.from_numpy(np.array(load_dataset(small).X[:4, 1:2]))
    with torch.no_grad():
        assert np.allclose(cal.model(x).numpy(), raw.model(x).numpy() + b, atol=1e-5)
    assert cal.extra["calibration"]["balanced_accuracy_after"] >= cal.extra["calibration"]["balanced_accuracy_before"]


def test_predict_reads_wfdb_and_npy(trained, tmp_path):
    from conftest import write_record

    rng = np.random.default_rng(3)
    sig = np.stack([GAINS[lead] * simulate_ecg("ARRHYTHMIA", 30, 500, rng) for lead in LEADS], axis=1)
    rec = write_record(tmp_path, "rec1", sig, 500, LEADS)
    out = tmp_path / "w.json"
    assert main(["predict", "--checkpoint", str(trained / "checkpoint.pt"), "--input", str(rec) + ".hea", "--lead-name", "II", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["input_rate"] == 500 and len(result["windows"]) == 3
    np.save(tmp_path / "x.npy", sig[:, 1])
    assert main(["predict", "--checkpoint", str(trained / "checkpoint.pt"), "--input", str(tmp_path / "x.npy"), "--input-rate", "500", "--out", str(out)]) == 0
    assert [w["label"] for w in json.loads(out.read_text())["windows"]] == [w["label"] for w in result["windows"]]


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_are_honoured(small, tmp_path, threads):
    """`train --threads N`: torch computes with N threads in the training process (history.json says how
    many it had), more than the cores too; the console script makes waiting OpenMP threads sleep."""
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = ("import os, sys; from pipeline.cli import main; code = main(sys.argv[1:]); "
            "assert os.environ['OMP_WAIT_POLICY'] == 'PASSIVE', os.environ.get('OMP_WAIT_POLICY'); sys.exit(code)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, "train", "--data", str(small), "--out-dir", str(out), "--lead", "II", "--threads", str(threads),
                           *TINY[:-5], "--epochs", "1", "--patience", "0", "--no-progress"], capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [h["threads"] for h in json.loads((out / "history.json").read_text())] == [threads]


def test_threads_default_and_policy_before_torch(monkeypatch):
    """Without --threads: every core the process may use but one, at least 1 (a torchrun's ranks share
    them); the wait policy is set before torch loads (importing pipeline.cli does not load it), a user's
    own wins."""
    from pipeline.util.threads import default_threads, use_threads

    probe = "import sys, pipeline.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
    mine = "import os; from pipeline.cli import main; main(['models']); print(os.environ['OMP_WAIT_POLICY'])"
    env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    assert subprocess.run([sys.executable, "-c", mine], capture_output=True, text=True, env=env).stdout.strip().endswith("ACTIVE")
    before = torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
        assert use_threads(None) == default_threads() == max(1, cores - 1)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * cores))
        assert default_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_threads_are_refused(small, tmp_path, capsys, command, value):
    what = ["--out-dir", str(tmp_path)] + (["--checkpoint", str(tmp_path / "none.pt")] if command == "evaluate" else [])
    with pytest.raises(SystemExit) as exc:
        main([command, "--data", str(small), *what, "--threads", value])
    assert exc.value.code == 2
    assert f"argument --threads: a whole number of threads >= 1, not '{value}'" in capsys.readouterr().err
