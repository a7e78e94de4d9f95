"""Human-facing summaries of a data set: the class/split table and example plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from pipeline.util.figures import save_figure
from pipeline.data.dataset import Dataset
from pipeline.data.labels import NO_CLASS
from pipeline.data.splits import SPLITS


def counts_table(counts: dict[str, dict[str, dict[str, int]]], title: str) -> Table:
    """Rich table: one row per label, windows/patients per split."""
    table = Table(title=title, caption="windows / patients")
    table.add_column("label")
    for s in (*SPLITS, "all"):
        table.add_column(s, justify="right")
    labels = list(next(iter(counts.values())).keys())
    for lab in labels:
        cells = []
        for s in (*SPLITS, "all"):
            c = counts[s][lab]
            cells.append(f"{c['windows']} / {c['patients']}")
        table.add_row(lab, *cells)
    return table


def print_summary(meta: dict[str, Any], path: Path, console: Console | None = None) -> None:
    console = console or Console()
    console.print(counts_table(meta["counts"], f"{path}: {meta['n_windows']} windows, leads {meta['leads']}"))
    for name, n in meta.get("label_sets", {}).get("all", {}).items():
        what = "windows of no class (never a training target; they test the quality rule)" if name == NO_CLASS else "windows that accept the label set"
        console.print(f"{n} {what} {name}" if name != NO_CLASS else f"{n} {name} {what}")
    for db, source in meta.get("sources", {}).items():
        for d in source.get("directories", []):
            dup = d["duplicates_skipped"]["count"]
            used = sum(1 for v in source.get("record_dirs", {}).values() if v == d["path"])
            console.print(f"{db}: {d['path']}: {d['records_on_disk']} record(s) on disk, {used} gave windows, {dup} duplicate(s) of an earlier directory skipped")
    skipped = meta.get("skipped", {})
    for db, info in skipped.get("missing", {}).items():
        console.print(f"[yellow]{db}: {info['count']} listed record(s) absent on disk (first: {', '.join(info['first'])})[/]")
    for reason, n in skipped.get("excluded_by_label_rule", {}).items():
        console.print(f"{n} record(s) left out: {reason}")
    if skipped.get("bad_records"):
        console.print(f"[yellow]{len(skipped['bad_records'])} bad record(s) skipped[/]")


def plot_examples(ds: Dataset, out: Path, per_class: int = 3, seed: int = 0) -> Path:
    """PNG with `per_class` example windows of each label (first lead), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    n_labels = len(ds.label_names)
    fig, axes = plt.subplots(n_labels, per_class, figsize=(4.5 * per_class, 2.2 * n_labels), squeeze=False, sharey=True)
    t = np.arange(ds.spec.window) / ds.spec.fs
    for i, name in enumerate(ds.label_names):
        idx = np.flatnonzero(ds.y == i)
        picks = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for j in range(per_class):
            ax = axes[i, j]
            if j < len(picks):
                k = int(picks[j])
                ax.plot(t, ds.X[k, 0], lw=0.6)
                ax.set_title(f"{name}: {ds.record[k]} @{ds.start[k]}", fontsize=8)
            else:
                ax.set_axis_off()
            if j == 0:
                ax.set_ylabel("z-score")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    fig.tight_layout()
    save_figure(fig, out, dpi=110)
    plt.close(fig)
    return out
