"""Label names: the one place that fixes their order (DESIGN.md, Labels)."""

LABELS: tuple[str, ...] = ("NORMAL", "MI", "ARRHYTHMIA")
STAGE1_LABELS: tuple[str, ...] = ("SINUS", "ARRHYTHMIA")
STAGE2_LABELS: tuple[str, ...] = ("NORMAL", "MI")

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "three_class": LABELS,
    "stage1": STAGE1_LABELS,
    "stage2": STAGE2_LABELS,
}


def label_index(name: str, labels: tuple[str, ...] = LABELS) -> int:
    """Index of `name` in `labels`, with a clear error for unknown names."""
    try:
        return labels.index(name)
    except ValueError:
        raise ValueError(f"unknown label {name!r}; expected one of {list(labels)}") from None
