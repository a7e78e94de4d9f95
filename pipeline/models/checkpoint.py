"""Checkpoints that rebuild their model from the file alone (DESIGN.md, Models and checkpoints)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.util.version import __version__
from pipeline.util.atomic import atomic_target
from pipeline.models.architectures import build_model
from pipeline.signal.quality import Uncertainty
from pipeline.signal.spec import PreprocessSpec

FORMAT = "ecg-edge-checkpoint/1"
REQUIRED = ("format", "state_dict", "model", "label_names", "spec", "leads", "dataset", "train_config")
UNCERTAINTY = "uncertainty"  # optional: pipeline.signal.quality.Uncertainty.to_dict(); absent in older checkpoints


class CheckpointError(ValueError):
    """A checkpoint file that is unreadable, incomplete or does not fit its model."""


@dataclass
class Checkpoint:
    """A trained model with everything needed to use it again."""

    model: nn.Module
    label_names: tuple[str, ...]
    spec: PreprocessSpec
    leads: list[str]
    model_config: dict[str, Any]
    dataset: dict[str, Any]
    train_config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def in_leads(self) -> int:
        return len(self.leads)

    @property
    def uncertainty(self) -> Uncertainty:
        """Confidence threshold and quality rule; a checkpoint without them gives threshold 0 and no
        quality rule (never uncertain)."""
        try:
            return Uncertainty.from_dict(self.extra.get(UNCERTAINTY))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{self.path}: unreadable {UNCERTAINTY} entry ({exc})") from exc


def store_uncertainty(path: Path, uncertainty: Uncertainty) -> Path:
    """Write `uncertainty` into an existing checkpoint file (atomically), leaving everything else as it was."""
    obj = read_payload(path)
    obj[UNCERTAINTY] = uncertainty.to_dict()
    return save_atomic(obj, Path(path))


def checkpoint_payload(
    model: nn.Module,
    model_config: dict[str, Any],
    label_names: tuple[str, ...] | list[str],
    spec: PreprocessSpec,
    leads: list[str],
    dataset: dict[str, Any],
    train_config: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """The dict a checkpoint file holds (plain types and tensors only)."""
    return {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "model": model_config,
        "label_names": list(label_names),
        "spec": spec.to_dict(),
        "leads": list(leads),
        "dataset": dataset,
        "train_config": train_config,
        "ecg_edge_version": __version__,
        **extra,
    }


def save_atomic(obj: dict[str, Any], path: Path) -> Path:
    """torch.save to a temp file beside `path`, then rename: never a half-written checkpoint."""
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)
    return path


def read_payload(path: Path) -> dict[str, Any]:
    """Load and validate a checkpoint file's dict, with errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        blob = path.read_bytes()
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an ecg-edge checkpoint (format {obj.get('format') if isinstance(obj, dict) else type(obj).__name__!r})")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return obj


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the model (eval mode) and its context from a checkpoint file alone."""
    path = Path(path)
    obj = read_payload(path)
    cfg = obj["model"]
    try:
        model = build_model(cfg["name"], **cfg.get("kwargs", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot build model {cfg!r} ({exc})") from exc
    try:
        result = model.load_state_dict(obj["state_dict"], strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"{path}: weights do not fit model {cfg.get('name')!r}: {str(exc)[:300]}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: weights do not fit model {cfg.get('name')!r}: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    model.eval()
    extra = {k: v for k, v in obj.items() if k not in REQUIRED}
    return Checkpoint(
        model=model,
        label_names=tuple(obj["label_names"]),
        spec=PreprocessSpec.from_dict(obj["spec"]),
        leads=list(obj["leads"]),
        model_config=cfg,
        dataset=obj["dataset"],
        train_config=obj["train_config"],
        extra=extra,
        path=path,
    )
