"""Training and distillation on a window data set; runs unchanged under torchrun (DDP).

One loop serves both: plain training minimises (weighted, smoothed, mixed-up) cross-entropy;
distillation adds a frozen teacher's soft targets (KL at a temperature, weighted 1 - alpha).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset as TorchDataset, Sampler
from tqdm import tqdm

from pipeline.signal.ad8232 import augment_window
from pipeline.models.checkpoint import Checkpoint, CheckpointError, checkpoint_payload, load_checkpoint, read_payload, save_atomic, store_uncertainty
from pipeline.data.dataset import Dataset, load_dataset, write_json_atomic
from pipeline.inference.classifiers import lead_positions
from pipeline.data.labels import NO_CLASS_Y, one_hot_masks
from pipeline.models.architectures import build_model, model_config
from pipeline.signal.preprocess import zscore
from pipeline.signal.quality import DEFAULT_QUALITY, DEFAULT_TARGET_COVERAGE, THRESHOLD_RULE, Uncertainty, choose_threshold
from pipeline.util.figures import save_figure

CHECKPOINT = "checkpoint.pt"
LAST = "last.pt"
HISTORY = "history.json"
CURVE = "learning_curve.png"


class TrainError(ValueError):
    """A training run that cannot start as configured."""


@dataclass
class TrainConfig:
    """Every option of a run (the seed's train.py options plus the device-specific ones)."""

    model: str = "mcu"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    leads: list[str] | None = None  # None: every lead of the data set
    # A single-lead model trained on several leads: each training window is one lead of the pool, drawn
    # per (seed, epoch, window); the model still declares `leads` (what the device wears by default).
    lead_pool: list[str] | None = None
    polarity_flip: float = 0.0  # chance that a training window is inverted (electrodes swapped)
    # Placement: each training window becomes a frontal-plane lead at an angle drawn from this range
    # (degrees; I = 0, II = 60, aVF = 90), built from the data set's leads I and II.
    frontal_angle: tuple[float, float] | None = None
    train_fraction: float = 1.0  # train on this share of the train split's patients (per label, seeded): learning curves
    # The defaults are the best recipe found for the single-lead student (README, "Off PTB-XL").
    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    augment: bool = True
    augment_strength: float = 1.0
    mixup: float = 0.0
    label_smoothing: float = 0.0
    balanced_sampler: bool = True
    # what the balanced sampler makes equally likely: each label ("label"), or each (database, label) pair
    # ("source-label": within every database its labels are equally likely, so no database says which label)
    balance_by: str = "source-label"  # on one database the same as "label"
    # windows of no class (CinC 2017's "too noisy") train toward equal probabilities with this weight (0: left
    # out), so that the confidence threshold answers them uncertain; the balanced sampler draws them as one more cell
    noise_weight: float = 0.5
    class_weights: bool = True  # inverse-frequency loss weights when not using the balanced sampler
    scheduler: str = "cosine"  # none | cosine
    min_lr: float = 1e-5
    patience: int = 20
    ema: float = 0.99  # decay of an exponential moving average of the weights (0: off); validated and saved instead
    seed: int = 13
    # fine-tuning: start from this checkpoint's weights (same model, labels, preprocessing and lead count),
    # e.g. a model pretrained on every PTB-XL lead, or a PTB-XL model tuned on your own recordings
    init: str | None = None
    # distillation (used when a teacher is given)
    temperature: float = 4.0
    alpha: float = 0.5
    # after training: the confidence threshold is chosen on the validation split (pipeline.signal.quality.THRESHOLD_RULE)
    target_coverage: float = DEFAULT_TARGET_COVERAGE


# ---------------------------------------------------------------------------------------
# distributed helpers


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group torchrun describes in the environment (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size())


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    if info.world == 1:
        return flag
    t = torch.tensor([int(flag)])
    dist.broadcast(t, src=0)
    return bool(t.item())


# ---------------------------------------------------------------------------------------
# data


def lead_indices(ds: Dataset, leads: list[str] | None) -> list[int]:
    """Positions of the wanted leads in the data set (case-insensitive; None: every lead)."""
    return list(range(len(ds.leads))) if leads is None else lead_positions(ds.leads, leads, f"data set {ds.path}")


def patient_subset(ds: Dataset, idx: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Windows of `fraction` of the patients behind `idx`, drawn per label (a patient counts under their first window's label)."""
    if not 0.0 < fraction <= 1.0:
        raise TrainError(f"train fraction {fraction} must be in (0, 1]")
    if fraction == 1.0:
        return idx
    rng = np.random.default_rng([seed, 7])
    patients, first = np.unique(ds.patient[idx], return_index=True)
    labels = ds.y[idx][first]
    keep: list[np.ndarray] = []
    for label in np.unique(labels):
        group = patients[labels == label]
        keep.append(rng.permutation(group)[: max(1, round(fraction * len(group)))])  # smaller shares nest in larger ones
    return idx[np.isin(ds.patient[idx], np.concatenate(keep))]


@dataclass(frozen=True)
class FrontalLead:
    """A frontal-plane lead at a random angle (radians) from leads I and II (Einthoven: aVF ~ (2 II - I) / sqrt 3)."""

    lead_i: int
    lead_ii: int
    low: float
    high: float

    def draw(self, window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        theta = rng.uniform(self.low, self.high)
        i, ii = window[self.lead_i], window[self.lead_ii]
        return (np.cos(theta) * i + np.sin(theta) * (2.0 * ii - i) / np.sqrt(3.0))[None].astype(np.float32)


class Windows(TorchDataset):
    """Windows of one split as (window, label, label-set mask); augmentation is seeded by (seed, epoch, window) so runs repeat."""

    def __init__(self, ds: Dataset, index: np.ndarray, leads: list[int], augment: bool = False, strength: float = 1.0, seed: int = 0,
                 pool: list[int] | None = None, flip: float = 0.0, frontal: FrontalLead | None = None):  # fmt: skip
        self.X, self.y, self.targets, self.index, self.leads = ds.X, ds.y, ds.targets, index, leads
        self.fs, self.eps = ds.spec.fs, ds.spec.zscore_eps
        self.augment, self.strength, self.seed = augment, strength, seed
        self.pool, self.flip, self.frontal = pool, flip, frontal
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        k = int(self.index[i])
        leads = self.leads
        sign = 1.0
        if self.pool or self.flip > 0 or self.frontal is not None:
            pick = np.random.default_rng([self.seed, self.epoch, k, 1])
            if self.pool:
                leads = [self.pool[int(pick.integers(len(self.pool)))]]
            if self.flip > 0 and pick.random() < self.flip:
                sign = -1.0
        if self.frontal is not None:
            x = zscore(self.frontal.draw(np.asarray(self.X[k], dtype=np.float32), pick), self.eps) * np.float32(sign)
        else:
            x = np.asarray(self.X[k][leads], dtype=np.float32) * np.float32(sign)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, k])
            # disturb the full window (so a teacher and its student see the same one), then renormalise
            x = zscore(augment_window(x, self.fs, rng, self.strength), self.eps)
        return torch.from_numpy(np.ascontiguousarray(x)), int(self.y[k]), int(self.targets[k])


class EpochSampler(Sampler[int]):
    """Shuffled (or class-balanced, with replacement) order, the same on every rank, split across ranks."""

    def __init__(self, labels: np.ndarray, balanced: bool, seed: int, info: DistInfo, groups: np.ndarray | None = None):
        self.labels, self.balanced, self.seed, self.info = labels, balanced, seed, info
        # balanced: every label equally likely, or with `groups` every (group, label) cell
        self.cells = labels if groups is None else np.unique(np.stack([groups.astype(str), labels.astype(str)], 1), axis=0, return_inverse=True)[1].ravel()
        self.epoch = 0
        self.per_rank = -(-len(labels) // info.world)

    def order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        n = len(self.labels)
        if not self.balanced:
            return rng.permutation(n)
        weights = class_weights(self.cells, int(self.cells.max()) + 1)[self.cells]
        return rng.choice(n, size=n, replace=True, p=weights / weights.sum())

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        order = np.resize(order, self.per_rank * self.info.world)  # pad by wrapping so ranks step together
        return iter(order[self.info.rank :: self.info.world].tolist())

    def __len__(self) -> int:
        return self.per_rank


BALANCE_BY = ("label", "source-label")


def window_sources(records: np.ndarray) -> np.ndarray:
    """The database of each window: its record id up to the first ':' (ptbxl, cinc2017, mitdb, ...)."""
    return np.array([str(r).split(":", 1)[0] for r in records])


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights normalised to mean 1 (the seed's rule)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = counts.sum() / (counts + 1e-6)
    return w / w.mean()


# ---------------------------------------------------------------------------------------
# the loop


def evaluate_logits(model: nn.Module, loader: DataLoader, lead_idx: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels over a loader, in eval mode."""
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for x, y, *_ in loader:
            logits.append(model(x if lead_idx is None else x[:, lead_idx]).float())
            labels.append(y)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def recall_per_class(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class (NaN where the class is absent)."""
    return np.array([np.mean(pred[y == c] == c) if np.any(y == c) else np.nan for c in range(n_classes)])


@dataclass
class RunState:
    epoch: int = 0
    best: float = -1.0
    best_epoch: int = 0
    stale: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def _soft_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=1), F.softmax(teacher / t, dim=1), reduction="batchmean") * t * t


def label_set_loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """-log of the summed probability of each window's label set (bit k of `mask`: label k), weighted by
    its label's class weight as CrossEntropyLoss weighs; equal to cross-entropy where every set is one label.

    A window whose set is {NORMAL, MI} is pushed away from ARRHYTHMIA and toward neither of the two."""
    member = (mask.unsqueeze(1) >> torch.arange(logits.size(1), device=mask.device)) & 1
    logp = F.log_softmax(logits, dim=1)
    nll = -torch.logsumexp(logp.masked_fill(member == 0, float("-inf")), dim=1)
    if weight is None:
        return nll.mean()
    w = weight[y]
    return (w * nll).sum() / w.sum()


class Trainer:
    """Holds model, optimiser and data for one run; `fit` runs epochs with early stopping."""

    def __init__(self, cfg: TrainConfig, data: Path, out_dir: Path, teacher: Checkpoint | None = None, progress: bool = True):
        self.cfg, self.out_dir, self.teacher, self.progress = cfg, Path(out_dir), teacher, progress
        self.info = init_distributed()
        torch.manual_seed(cfg.seed)
        self.ds = load_dataset(data)
        self.n_classes = len(self.ds.label_names)
        # windows of no class never train a class; with noise_weight they train toward equal probabilities
        self.train_idx = self.ds.indices("train") if cfg.noise_weight > 0 else self.ds.class_indices("train")
        self.val_idx = self.ds.class_indices("val")
        if cfg.noise_weight < 0:
            raise TrainError(f"noise_weight {cfg.noise_weight} must be >= 0")
        if cfg.mixup > 0 and np.any(self.ds.y[self.train_idx] == NO_CLASS_Y):
            raise TrainError(f"{data}: mixup is not defined for windows of no class; use --noise-weight 0 or --mixup 0")
        self.train_idx = patient_subset(self.ds, self.train_idx, cfg.train_fraction, cfg.seed)
        for name, idx in (("train", self.train_idx), ("val", self.val_idx)):
            if len(idx) == 0:
                raise TrainError(f"{data}: the {name} split is empty")
        self.leads = lead_indices(self.ds, cfg.leads)
        self.lead_names = [self.ds.leads[i] for i in self.leads]
        self.input_leads = self._input_leads()
        kwargs = {**cfg.model_kwargs, "in_leads": len(self.leads), "n_classes": self.n_classes}
        self.model = build_model(cfg.model, **kwargs)
        self.model_config = model_config(self.model)
        self.init_from = self._load_init() if cfg.init else None
        self.net: nn.Module = self.model
        if self.info.world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=cfg.epochs, eta_min=cfg.min_lr) if cfg.scheduler == "cosine" else None
        )
        y_train = self.ds.y[self.train_idx]
        cells_train = np.where(y_train == NO_CLASS_Y, self.n_classes, y_train)  # no class: a cell of its own for the sampler
        with_class = y_train != NO_CLASS_Y
        weights = None
        if cfg.class_weights and not cfg.balanced_sampler:
            weights = torch.tensor(class_weights(y_train[with_class], self.n_classes), dtype=torch.float32)
        self.loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
        # partial labels (pipeline.data.labels): the loss of a window is that of its label set
        self.label_sets = bool(np.any(self.ds.targets[self.train_idx][with_class] != one_hot_masks(y_train[with_class])))
        if self.label_sets and cfg.label_smoothing > 0:
            raise TrainError(f"{data}: label smoothing is not defined for windows with label sets (partial labels); use --label-smoothing 0")
        pool = self._lead_pool()
        self.train_set = Windows(self.ds, self.train_idx, self.input_leads, cfg.augment, cfg.augment_strength, cfg.seed, pool, cfg.polarity_flip,
                                 self._frontal())  # fmt: skip
        if cfg.balance_by not in BALANCE_BY:
            raise TrainError(f"balance_by must be one of {BALANCE_BY}, not {cfg.balance_by!r}")
        groups = window_sources(self.ds.record[self.train_idx]) if cfg.balance_by == "source-label" else None
        self.sampler = EpochSampler(cells_train, cfg.balanced_sampler, cfg.seed, self.info, groups)
        per_rank = max(1, cfg.batch_size // self.info.world)
        self.train_loader = DataLoader(self.train_set, batch_size=per_rank, sampler=self.sampler)
        self.val_loader = DataLoader(Windows(self.ds, self.val_idx, self.leads), batch_size=256)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.ema = (
            torch.optim.swa_utils.AveragedModel(self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            if cfg.ema > 0
            else None
        )
        self.state = RunState()

    @property
    def kept(self) -> nn.Module:
        """The weights that are validated and saved: the moving average when --ema is on."""
        return self.ema.module if self.ema is not None else self.model

    def _load_init(self) -> dict[str, Any]:
        """Start from --init's weights; refuse a checkpoint that does not fit this run."""
        init = load_checkpoint(self.cfg.init)

        def fit(config: dict[str, Any], labels: Any, spec: Any) -> dict[str, Any]:
            return {"model": config["name"], **config.get("kwargs", {}), "labels": list(labels), **spec.to_dict()}

        # the rebuilt model's config: today's defaults for options the checkpoint predates
        theirs = fit(model_config(init.model), init.label_names, init.spec)
        ours = fit(self.model_config, self.ds.label_names, self.ds.spec)
        wrong = [f"{k} {theirs.get(k)!r} (this run: {ours.get(k)!r})" for k in dict.fromkeys([*theirs, *ours]) if theirs.get(k) != ours.get(k)]
        if wrong:
            raise TrainError(f"--init {init.path}: does not fit this run: " + "; ".join(wrong))
        self.model.load_state_dict(init.model.state_dict())
        return {"path": str(init.path), "leads": init.leads, "dataset_sha256": init.dataset.get("sha256")}

    def _lead_pool(self) -> list[int] | None:
        """Positions of the --lead-pool leads; a pool needs a single-lead model and no teacher."""
        cfg = self.cfg
        if not 0.0 <= cfg.polarity_flip <= 1.0:
            raise TrainError(f"polarity flip {cfg.polarity_flip} is not a probability")
        if not cfg.lead_pool:
            return None
        if len(self.leads) != 1 or self.teacher is not None:
            raise TrainError("--lead-pool trains a single-lead model without a teacher: give one --lead (the lead it declares)")
        return lead_positions(self.ds.leads, cfg.lead_pool, f"data set {self.ds.path} (--lead-pool)")

    def _frontal(self) -> FrontalLead | None:
        """Positions of leads I and II and the angle range for --frontal-angle."""
        cfg = self.cfg
        if cfg.frontal_angle is None:
            return None
        lo, hi = (float(a) for a in cfg.frontal_angle)
        if not -180.0 <= lo <= hi <= 180.0:
            raise TrainError(f"--frontal-angle {lo:g} {hi:g}: need -180 <= LOW <= HIGH <= 180 degrees")
        if cfg.lead_pool or len(self.leads) != 1 or self.teacher is not None:
            raise TrainError("--frontal-angle trains a single-lead model without a teacher or --lead-pool: give one --lead")
        i, ii = lead_positions(self.ds.leads, ["I", "II"], f"data set {self.ds.path} (--frontal-angle)")
        return FrontalLead(i, ii, np.deg2rad(lo), np.deg2rad(hi))

    def _input_leads(self) -> list[int]:
        """Leads the loader yields: the student's, or every lead the teacher needs."""
        if self.teacher is None:
            return self.leads
        self.teacher_leads = lead_positions(self.ds.leads, self.teacher.leads, f"data set {self.ds.path} (for the teacher)")
        if tuple(self.teacher.label_names) != tuple(self.ds.label_names):
            raise TrainError(f"teacher labels {self.teacher.label_names} differ from the data set's {self.ds.label_names}")
        return list(range(len(self.ds.leads)))

    # --- one epoch ---------------------------------------------------------------------
    def _class_loss(self, logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        noise = y == NO_CLASS_Y
        if noise.any():  # only with noise_weight: toward equal probabilities, weighted by the share of such windows
            keep = ~noise
            uniform = -F.log_softmax(logits[noise], dim=1).mean(dim=1).sum() / y.numel()
            rest = self._class_loss(logits[keep], y[keep], mask[keep]) * keep.float().mean() if keep.any() else logits.sum() * 0
            return rest + self.cfg.noise_weight * uniform
        if self.label_sets:
            return label_set_loss(logits, y, mask, self.loss_fn.weight)
        return self.loss_fn(logits, y)

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        ya, yb, ma, mb, lam = y, y, mask, mask, 1.0
        if cfg.mixup > 0 and x.size(0) > 1:
            perm = torch.randperm(x.size(0), generator=self.gen)
            lam = float(torch.distributions.Beta(cfg.mixup, cfg.mixup).sample().item())
            x, yb, mb = lam * x + (1 - lam) * x[perm], y[perm], mask[perm]
        student_x = x if self.teacher is None else x[:, self.leads]
        logits = self.net(student_x)
        loss = lam * self._class_loss(logits, ya, ma) + (1 - lam) * self._class_loss(logits, yb, mb)
        if self.teacher is None:
            return loss
        with torch.no_grad():
            soft = self.teacher.model(x[:, self.teacher_leads])
        return cfg.alpha * loss + (1 - cfg.alpha) * _soft_loss(logits, soft, cfg.temperature)

    def _train_epoch(self, epoch: int) -> float:
        self.net.train()
        self.sampler.epoch = self.train_set.epoch = epoch
        losses = []
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}", leave=False, disable=None if self.progress and self.info.main else True)
        for x, y, mask in bar:
            self.opt.zero_grad()
            loss = self._batch_loss(x, y, mask)
            loss.backward()
            self.opt.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            losses.append(float(loss.item()))
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        if self.sched is not None:
            self.sched.step()
        mean = torch.tensor([float(np.mean(losses))])
        if self.info.world > 1:
            dist.all_reduce(mean)
            mean /= self.info.world
        return float(mean.item())

    def _validate(self) -> dict[str, Any]:
        logits, y = evaluate_logits(self.kept, self.val_loader)
        t = torch.from_numpy(logits)
        sets = torch.from_numpy(self.ds.targets[self.val_idx])
        loss = float((label_set_loss(t, torch.from_numpy(y), sets) if self.label_sets else F.cross_entropy(t, torch.from_numpy(y))).item())
        pred = logits.argmax(1)
        rec = recall_per_class(y, pred, self.n_classes)
        row = {"val_loss": loss, "val_balanced_accuracy": float(np.nanmean(rec)), "val_recall": {n: float(r) for n, r in zip(self.ds.label_names, rec)}}
        if self.cfg.balance_by == "source-label":  # selection as the sampler weighs: every (database, label) cell alike
            sources = window_sources(self.ds.record[self.val_idx])
            cells = {f"{s} {name}": float(r) for s in np.unique(sources)
                     for name, r in zip(self.ds.label_names, recall_per_class(y[sources == s], pred[sources == s], self.n_classes)) if not np.isnan(r)}  # fmt: skip
            row.update(val_balanced_accuracy=float(np.mean(list(cells.values()))), val_recall_by_source=cells)
        return row

    # --- checkpoints -------------------------------------------------------------------
    def _payload(self, **extra: Any) -> dict[str, Any]:
        dataset = {
            "path": str(self.ds.path),
            "sha256": self.ds.meta["dataset_sha256"],
            "label_set": self.ds.meta.get("label_set"),
            "train_windows": int(len(self.train_idx)),
            "val_windows": int(len(self.val_idx)),
            "split_rule": "dataset split column: train for fitting, val for early stopping, test held out",
        }
        cfg = asdict(self.cfg) | {"world_size": self.info.world}
        if self.teacher is not None:
            cfg["teacher"] = {"path": str(self.teacher.path), "model": self.teacher.model_config, "leads": self.teacher.leads}
        if self.init_from is not None:
            cfg["init"] = self.init_from
        return checkpoint_payload(self.kept, self.model_config, self.ds.label_names, self.ds.spec, self.lead_names, dataset, cfg, **extra)

    def _save_last(self) -> None:
        extra = {
            "optimizer": self.opt.state_dict(),
            "trained_state_dict": self.model.state_dict(),
            "ema_state_dict": self.ema.state_dict() if self.ema is not None else None,
            "scheduler": self.sched.state_dict() if self.sched else None,
            "run_state": asdict(self.state),
            "generator": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        save_atomic(self._payload(**extra), self.out_dir / LAST)

    def resume(self) -> None:
        """Continue from `out_dir/last.pt` (same model and data set only)."""
        path = self.out_dir / LAST
        obj = read_payload(path)
        if obj["dataset"]["sha256"] != self.ds.meta["dataset_sha256"] or obj["model"] != self.model_config:
            raise CheckpointError(f"{path}: was trained on another data set or model; cannot resume with these options")
        self.model.load_state_dict(obj["trained_state_dict"])
        if self.ema is not None:
            self.ema.load_state_dict(obj["ema_state_dict"])
        self.opt.load_state_dict(obj["optimizer"])
        if self.sched is not None and obj.get("scheduler"):
            self.sched.load_state_dict(obj["scheduler"])
        self.gen.set_state(obj["generator"])
        torch.set_rng_state(obj["torch_rng"])
        self.state = RunState(**obj["run_state"])

    # --- the run -----------------------------------------------------------------------
    def fit(self) -> Path:
        cfg, st = self.cfg, self.state
        if self.info.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        for epoch in range(st.epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            train_loss = self._train_epoch(epoch)
            stop = False
            if self.info.main:
                row = {"epoch": epoch, "train_loss": train_loss, **self._validate(), "lr": self.opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
                       "threads": torch.get_num_threads()}
                st.history.append(row)
                st.epoch = epoch
                if row["val_balanced_accuracy"] > st.best:
                    st.best, st.best_epoch, st.stale = row["val_balanced_accuracy"], epoch, 0
                    save_atomic(self._payload(history=st.history, best_epoch=epoch), self.out_dir / CHECKPOINT)
                else:
                    st.stale += 1
                self._save_last()
                write_history(self.out_dir, st.history)
                print(
                    f"epoch {epoch:3d}  loss {train_loss:.4f}  val loss {row['val_loss']:.4f}  "
                    f"val bal.acc {row['val_balanced_accuracy']:.4f}  best {st.best:.4f}@{st.best_epoch}  {row['seconds']:.1f}s",
                    flush=True,
                )
                stop = cfg.patience > 0 and st.stale >= cfg.patience
            else:
                st.epoch = epoch
            if broadcast_flag(stop, self.info):
                if self.info.main:
                    print(f"early stop: no val improvement for {cfg.patience} epochs")
                break
        if self.info.main:
            plot_history(st.history, self.out_dir / CURVE)
            self.store_uncertainty(self.out_dir / CHECKPOINT)
        return self.out_dir / CHECKPOINT

    def store_uncertainty(self, path: Path) -> Uncertainty:
        """Choose the confidence threshold on the validation split with the saved (best) weights and
        write it, with the default quality rule, into the checkpoint."""
        ckpt = load_checkpoint(path)
        logits, y = evaluate_logits(ckpt.model, self.val_loader)
        probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        t = choose_threshold(probs, self.cfg.target_coverage)
        covered = probs.max(1) >= t
        rec = recall_per_class(y[covered], probs[covered].argmax(1), self.n_classes)
        selection = {
            "rule": THRESHOLD_RULE,
            "target_coverage": self.cfg.target_coverage,
            "split": "val",
            "windows": int(len(y)),
            "coverage": float(covered.mean()),
            "balanced_accuracy_covered": float(np.nanmean(rec)),
            "balanced_accuracy_all": float(np.nanmean(recall_per_class(y, probs.argmax(1), self.n_classes))),
            "quality_applied": False,  # the data set holds z-scored windows only; the rule needs the raw signal
        }
        unc = Uncertainty(t, DEFAULT_QUALITY, selection)
        store_uncertainty(path, unc)
        print(f"confidence threshold {t:.3f} (val coverage {selection['coverage']:.1%}, "
              f"balanced acc. covered {selection['balanced_accuracy_covered']:.3f} vs all {selection['balanced_accuracy_all']:.3f})")
        return unc


def write_history(out_dir: Path, history: list[dict[str, Any]]) -> None:
    write_json_atomic(out_dir / HISTORY, history)


def plot_history(history: list[dict[str, Any]], path: Path) -> Path:
    """Learning curves: losses and validation balanced accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    a.plot(epochs, [h["val_loss"] for h in history], label="val loss")
    a.set_xlabel("epoch")
    a.legend()
    b.plot(epochs, [h["val_balanced_accuracy"] for h in history], label="val balanced acc.")
    for name in history[0]["val_recall"] if history else []:
        b.plot(epochs, [h["val_recall"][name] for h in history], lw=0.8, ls="--", label=f"recall {name}")
    b.set_xlabel("epoch")
    b.set_ylim(0, 1)
    b.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def train(cfg: TrainConfig, data: Path, out_dir: Path, teacher: Path | None = None, resume: bool = False, progress: bool = True) -> Path:
    """Train (or distil from `teacher`) and return the best checkpoint's path."""
    teacher_ckpt = load_checkpoint(teacher) if teacher else None
    if teacher_ckpt is not None:
        teacher_ckpt.model.requires_grad_(False)
    trainer = Trainer(cfg, data, out_dir, teacher_ckpt, progress)
    if resume:
        trainer.resume()
    try:
        return trainer.fit()
    finally:
        if trainer.info.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

