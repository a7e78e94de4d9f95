"""Training and inference throughput (windows/s) of the models on this machine's CPU.

Run by hand:  .venv/bin/python tests/bench/bench_train.py [--seconds 20]
Training is a full step (forward, backward, AdamW) on batches of 64 windows of (1, 2500),
with or without the AD8232 augmentation the data loader adds; inference is eval-mode forward
on batches of 256. The seed recipe trains the same ECGResNet at batch 64, so its row is the
seed's speed on this machine. Writes tests/bench/results/bench_train.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.signal.ad8232 import augment_window
from pipeline.models.architectures import build_model

HERE = Path(__file__).resolve().parent


def timed(fn, seconds: float) -> float:
    """Calls of `fn` per second over about `seconds` (after one warm-up call)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def bench(name: str, seconds: float, augment: bool = False) -> dict:
    torch.manual_seed(0)
    model = build_model(name, in_leads=1, n_classes=3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = torch.randn(64, 1, 2500)
    y = torch.randint(0, 3, (64,))

    def step() -> None:
        batch = x
        if augment:  # the per-window work the data loader adds
            batch = torch.from_numpy(np.stack([augment_window(w.numpy(), 250, rng) for w in x]))
        model.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(batch), y).backward()
        opt.step()

    xi = torch.randn(256, 1, 2500)

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(xi)

    return {"train_windows_s": 64 * timed(step, seconds), "infer_windows_s": 256 * timed(infer, seconds / 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    rows = {}
    for label, name, augment in (("mcu student (+AD8232 augment)", "mcu", True), ("mcu student", "mcu", False),
                                 ("ECGResNet (+AD8232 augment)", "resnet", True), ("ECGResNet (the seed recipe's network)", "resnet", False)):
        rows[label] = bench(name, args.seconds, augment)
        print(f"{label:32s} train {rows[label]['train_windows_s']:8.1f} win/s   inference {rows[label]['infer_windows_s']:8.1f} win/s", flush=True)
    out = HERE / "results" / "bench_train.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "torch_threads": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
