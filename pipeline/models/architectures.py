"""Every model of the project, a registry that rebuilds them from plain kwargs, and MCU cost estimates.

Models take `(batch, leads, samples)` float32 and return `(batch, n_classes)` logits.
`ECGNet`, `ECGResNet` and `ECGInception` reproduce the seed project's "basic", "resnet" and
"inception" networks layer for layer (same state-dict keys, so its weights load).
`MCUResNet` is the student for microcontrollers: only layers that become TensorFlow Lite Micro
builtins after PyTorch -> ONNX -> onnx2tf -> int8 TFLite (conv + BN + ReLU, add, max pool,
mean over time, fully connected).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

from pipeline.signal.spec import DEFAULT_SPEC

if TYPE_CHECKING:
    from rich.table import Table

MCU_BUDGET = {"int8_weight_bytes": 65536, "activation_bytes": 32768}
WINDOW = DEFAULT_SPEC.window


# --------------------------------------------------------------------------- rebuildable models


def _plain(value: Any, where: str) -> Any:
    """`value` as JSON-able plain data (tuples become lists), or a TypeError."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    raise TypeError(f"{where}: constructor arguments must be plain JSON values, got {type(value).__name__}")


class Rebuildable(nn.Module):
    """Base class that remembers the constructor's keyword arguments (defaults filled in) in `init_kwargs`.

    Subclasses must accept only plain JSON-able keyword arguments; `registry_name` is the
    `MODELS` entry that builds the class with its defaults.
    """

    registry_name = ""
    init_kwargs: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        sig = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Rebuildable, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            bound = sig.bind(self, *args, **kw)
            bound.apply_defaults()
            # The outermost subclass's wrapper runs last, so its arguments win.
            self.init_kwargs = {k: _plain(v, f"{cls.__name__}.{k}") for k, v in list(bound.arguments.items())[1:]}

        cls.__init__ = recording_init  # type: ignore[method-assign]


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True) -> list[nn.Module]:
    return [nn.Conv1d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=bias), nn.BatchNorm1d(out_ch)]


# --------------------------------------------------------------------------- seed project models


class ECGNet(Rebuildable):
    """Seed "basic": three strided conv-BN-ReLU layers (32/64/128), dropout, global average pool, linear."""

    registry_name = "ecgnet"

    def __init__(self, in_leads: int = 1, n_classes: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, k in ((in_leads, 32, 7), (32, 64, 5), (64, 128, 5)):
            layers += [*_conv_bn(c_in, c_out, k, stride=2, padding=k // 2), nn.ReLU()]
        self.features = nn.Sequential(*layers, nn.Dropout(0.2))
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).squeeze(-1))


class ResBlock(nn.Module):
    """Two conv-BN layers with a ReLU between, added to the input (1x1 conv-BN shortcut when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 7, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel, padding=kernel // 2)
        self.bn2 = nn.BatchNorm1d(out_ch)
        self.relu = nn.ReLU()
        changes = stride != 1 or in_ch != out_ch
        self.downsample = nn.Sequential(*_conv_bn(in_ch, out_ch, 1, stride=stride)) if changes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _stage(in_ch: int, out_ch: int, blocks: int, stride: int, kernel: int) -> nn.Sequential:
    """`blocks` residual blocks; the first one changes stride and width."""
    return nn.Sequential(*(ResBlock(in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else 1) for i in range(blocks)))


class ECGResNet(Rebuildable):
    """Seed "resnet": conv stem (32), three stages of two residual blocks (64/128/256, stride 2), GAP, dropout, linear."""

    registry_name = "resnet"

    def __init__(self, in_leads: int = 1, n_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_leads, 32, 7, stride=2, padding=3), nn.ReLU())
        self.layer1 = _stage(32, 64, 2, 2, 7)
        self.layer2 = _stage(64, 128, 2, 2, 7)
        self.layer3 = _stage(128, 256, 2, 2, 7)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(256, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.classifier(self.dropout(self.pool(x).squeeze(-1)))


class InceptionModule(nn.Module):
    """1x1 bottleneck (skipped for one input channel), conv branches plus a maxpool + 1x1 branch, concat, BN, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernels: tuple[int, ...] = (9, 19, 39), bottleneck: int = 32) -> None:
        super().__init__()
        use_bottleneck = bottleneck > 0 and in_ch > 1
        self.bottleneck = nn.Conv1d(in_ch, bottleneck, 1, bias=False) if use_bottleneck else None
        mid = bottleneck if use_bottleneck else in_ch
        self.branches = nn.ModuleList(nn.Conv1d(mid, out_ch, k, padding=k // 2, bias=False) for k in kernels)
        self.pool = nn.MaxPool1d(3, stride=1, padding=1)
        self.pool_conv = nn.Conv1d(mid, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm1d(out_ch * (len(kernels) + 1))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bottleneck is not None:
            x = self.bottleneck(x)
        outs = [branch(x) for branch in self.branches] + [self.pool_conv(self.pool(x))]
        return self.relu(self.bn(torch.cat(outs, dim=1)))


class InceptionBlock(nn.Module):
    """Three inception modules with a 1x1 conv-BN residual around them."""

    def __init__(self, in_ch: int, out_ch: int, kernels: tuple[int, ...] = (9, 19, 39), bottleneck: int = 32) -> None:
        super().__init__()
        mid = out_ch * (len(kernels) + 1)
        self.module1 = InceptionModule(in_ch, out_ch, kernels, bottleneck)
        self.module2 = InceptionModule(mid, out_ch, kernels, bottleneck)
        self.module3 = InceptionModule(mid, out_ch, kernels, bottleneck)
        self.residual = nn.Sequential(*_conv_bn(in_ch, mid, 1, bias=False))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.module3(self.module2(self.module1(x))) + self.residual(x))


class ECGInception(Rebuildable):
    """Seed "inception" (InceptionTime-style): `blocks` inception blocks, GAP, dropout, linear."""

    registry_name = "inception"

    def __init__(self, in_leads: int = 1, n_classes: int = 3, blocks: int = 2, out_channels: int = 32) -> None:
        super().__init__()
        width = out_channels * 4
        self.features = nn.Sequential(*(InceptionBlock(in_leads if i == 0 else width, out_channels) for i in range(blocks)))
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(width if blocks else in_leads, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.features(x)).squeeze(-1)))


# --------------------------------------------------------------------------- MCU student


class MCUResNet(Rebuildable):
    """A 1-D ResNet for microcontrollers, width and depth set by the constructor.

    Layers: conv stem (stride `stem_stride`) + BN + ReLU, optional max pool (`stem_pool` = its
    stride, 0 for none), stages of `ResBlock`s (stride `stage_strides[i]` in each stage's first
    block), mean over time, dropout, a 1x1-conv head. BN always follows a conv so export folds it, ReLU
    fuses into the conv or add, and every pad is symmetric and static.

    Default (one lead, three classes, 2500 samples): 53,243 parameters, 8.28 M MACs, 53,692 int8
    weight bytes, 22,536 peak activation bytes. The stem (stride 4, then max pool stride 2) takes
    the window to 313 steps so the widest stage's activations fit. onnx2tf makes stride-1 convs
    "SAME" CONV_2Ds and puts a PAD before each strided conv; both are TFLM builtins.
    """

    registry_name = "mcu"

    def __init__(
        self,
        in_leads: int = 1,
        n_classes: int = 3,
        stem_channels: int = 16,
        stem_kernel: int = 8,
        stem_stride: int = 4,
        stem_pool: int = 2,
        stage_channels: list[int] = [24, 32, 48],  # noqa: B006 - never mutated; recorded as a list
        stage_strides: list[int] = [1, 2, 2],  # noqa: B006
        blocks_per_stage: int | list[int] = [2, 2, 1],  # noqa: B006
        kernel_size: int = 5,
        dropout: float = 0.2,
        head: str = "mean",
    ) -> None:
        super().__init__()
        if head not in ("mean", "mean+max"):
            raise ValueError(f"head must be 'mean' or 'mean+max', got {head!r}")
        n_stages = len(stage_channels)
        blocks = [blocks_per_stage] * n_stages if isinstance(blocks_per_stage, int) else list(blocks_per_stage)
        if len(stage_strides) != n_stages or len(blocks) != n_stages:
            raise ValueError("stage_channels, stage_strides and blocks_per_stage (as a list) need the same length")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        pad = max(0, (stem_kernel - stem_stride + 1) // 2)  # "SAME"-like: output length ceil(length / stride)
        stem: list[nn.Module] = [*_conv_bn(in_leads, stem_channels, stem_kernel, stride=stem_stride, padding=pad), nn.ReLU()]
        if stem_pool > 1:
            stem.append(nn.MaxPool1d(stem_pool + 1, stride=stem_pool, padding=stem_pool // 2))
        self.stem = nn.Sequential(*stem)
        stages, width = [], stem_channels
        for ch, stride, n in zip(stage_channels, stage_strides, blocks):
            stages.append(_stage(width, ch, n, stride, kernel_size))
            width = ch
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        # The head is a 1x1 convolution, not a Linear: it becomes CONV_2D, whose int8 reference
        # kernels requantize in integer arithmetic in both LiteRT and TFLM, so the two agree bit for
        # bit (LiteRT's reference FULLY_CONNECTED requantizes in float and can differ by one LSB).
        self.classifier = nn.Conv1d(width, n_classes, kernel_size=1)
        # "mean+max": a second 1x1 head on the maximum over time, added to the first (ADD, no concat):
        # a finding in a few beats of the window (an irregular interval) is not averaged away
        self.max_classifier = nn.Conv1d(width, n_classes, kernel_size=1) if head == "mean+max" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        # mean over time exports as ReduceMean -> TFLite MEAN (no adaptive pooling)
        out = self.classifier(self.dropout(x.mean(dim=-1, keepdim=True)))
        if self.max_classifier is not None:
            out = out + self.max_classifier(self.dropout(F.max_pool1d(x, int(x.shape[-1]))))
        return out.squeeze(-1)


# --------------------------------------------------------------------------- registry


def _variant(cls: type[Rebuildable], name: str, **defaults: Any) -> Callable[..., nn.Module]:
    """A factory for `cls` with other default kwargs; the model remembers `name` for `model_config`."""

    def factory(in_leads: int = 1, n_classes: int = 3, **kwargs: Any) -> nn.Module:
        model = cls(in_leads=in_leads, n_classes=n_classes, **{**defaults, **kwargs})
        model.registry_name = name
        return model

    factory.__doc__ = f"{cls.__name__} with {defaults}"
    return factory


MODELS: dict[str, Callable[..., nn.Module]] = {
    "ecgnet": ECGNet,
    "resnet": ECGResNet,
    "inception": ECGInception,
    "mcu": MCUResNet,
    "mcu_small": _variant(MCUResNet, "mcu_small", stem_channels=8, stage_channels=[16, 24, 32], blocks_per_stage=1),
    "mcu_large": _variant(MCUResNet, "mcu_large", stage_channels=[32, 32, 48]),
    # fits a 32 KB SAMD21 with the stream buffers (README, Boards): stem stride 8, 5.6 KB peak activations
    "mcu_tiny": _variant(MCUResNet, "mcu_tiny", stem_channels=8, stem_kernel=16, stem_stride=8, stage_channels=[12, 16, 24], blocks_per_stage=1),
}


def build_model(name: str, in_leads: int | None = None, n_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """The registered model `name` for `in_leads` input leads and `n_classes` logits (class defaults: 1 and 3).

    Also takes a config as `model_config` returns it: `build_model(**config)`, i.e. `kwargs={...}`.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    nested = kwargs.pop("kwargs", None) or {}
    kwargs = {**nested, **kwargs}
    for key, value in (("in_leads", in_leads), ("n_classes", n_classes)):
        if value is not None:
            kwargs[key] = value
    model = MODELS[name](**kwargs)
    model.registry_name = name
    return model


def model_config(model: nn.Module) -> dict[str, Any]:
    """`{"name", "kwargs"}` (kwargs include `in_leads` and `n_classes`) so `build_model(**config)` rebuilds `model`."""
    if not isinstance(model, Rebuildable):
        raise TypeError(f"{type(model).__name__} is not a registered model class")
    return {"name": model.registry_name, "kwargs": {k: (list(v) if isinstance(v, list) else v) for k, v in model.init_kwargs.items()}}


# --------------------------------------------------------------------------- MCU cost estimates


@dataclass
class ModelStats:
    """Cost of one inference: parameters, multiply-accumulates, int8 weight bytes, peak int8 activation bytes."""

    params: int
    macs: int
    int8_weight_bytes: int
    peak_activation_bytes: int

    def fits(self, budget: dict[str, int] = MCU_BUDGET) -> bool:
        return self.int8_weight_bytes <= budget["int8_weight_bytes"] and self.peak_activation_bytes <= budget["activation_bytes"]


def _forward_with_hook(model: nn.Module, x: torch.Tensor, hook: Callable[..., None], modules: list[nn.Module]) -> None:
    """One no-grad forward pass with `hook` on `modules`, removed afterwards."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()


def _macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of Conv1d and Linear layers for one item of `x` (pooling and adds count as 0)."""
    total = 0

    def hook(module: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv1d):
            per_output = module.in_channels // module.groups * module.kernel_size[0]
        else:
            per_output = module.in_features
        total += out.numel() // out.shape[0] * per_output

    _forward_with_hook(model, x, hook, [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))])
    return total


def _int8_weight_bytes(model: nn.Module) -> int:
    """int8 weights (1 byte each) + an int32 bias per conv/linear output (BN folds into it); BN itself is free."""
    total = 0
    for m in model.modules():
        direct = list(m.parameters(recurse=False))
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            total += m.weight.numel() + 4 * m.weight.shape[0]
        elif not isinstance(m, nn.modules.batchnorm._BatchNorm):
            total += sum(p.numel() for p in direct)
    return total


# Ops whose output shares the input's buffer on the device: BN folds into the conv, ReLU fuses,
# dropout vanishes, reshapes are views.
_ALIAS_MODULES = (nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Identity, nn.Flatten)
_ALIAS_FUNCS = {torch.relu, torch.flatten, torch.squeeze, torch.unsqueeze, torch.reshape, nn.functional.relu, nn.functional.dropout}
_ALIAS_METHODS = {"relu", "flatten", "squeeze", "unsqueeze", "view", "reshape", "contiguous"}


def _is_alias(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(str(node.target)), _ALIAS_MODULES)
    if node.op == "call_function":
        return node.target in _ALIAS_FUNCS
    return node.op == "call_method" and node.target in _ALIAS_METHODS


def _peak_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Largest sum of int8 tensors alive at once when the graph runs in order (input, output and held skips)."""
    gm = fx.symbolic_trace(model)
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(gm).propagate(x)
    buffer_of: dict[fx.Node, fx.Node] = {}  # node -> the node that owns its memory
    size: dict[fx.Node, int] = {}
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    last_use: dict[fx.Node, int] = {}
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape") or node.op in ("get_attr", "output"):
            continue
        inputs = [n for n in node.all_input_nodes if n in buffer_of]
        owner = buffer_of[inputs[0]] if inputs and _is_alias(gm, node) else node
        buffer_of[node] = owner
        size.setdefault(owner, int(torch.Size(meta.shape).numel()) // x.shape[0])
        for n in inputs:
            last_use[buffer_of[n]] = order[node]
        last_use[owner] = max(last_use.get(owner, order[node]), order[node])
    peak = 0
    for node in gm.graph.nodes:
        if buffer_of.get(node) is not node:
            continue
        step = order[node]
        peak = max(peak, sum(s for b, s in size.items() if order[b] <= step <= last_use[b]))
    return peak


def _peak_by_hooks(model: nn.Module, x: torch.Tensor) -> int:
    """Fallback for models fx cannot trace: the largest input + output of one leaf module."""
    peak = 0

    def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal peak
        peak = max(peak, (sum(t.numel() for t in inp if torch.is_tensor(t)) + out.numel()) // x.shape[0])

    _forward_with_hook(model, x, hook, [m for m in model.modules() if not list(m.children())])
    return peak


def model_stats(model: nn.Module, in_leads: int, length: int = WINDOW) -> ModelStats:
    """Parameters, MACs per window, int8 weight bytes and peak int8 activation bytes for a `(1, in_leads, length)` input."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, in_leads, length)
    try:
        macs = _macs(model, x)
        try:
            peak = _peak_activation_bytes(model, x)
        except Exception:  # noqa: BLE001 - an untraceable model still gets an estimate
            peak = _peak_by_hooks(model, x)
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return ModelStats(params=params, macs=macs, int8_weight_bytes=_int8_weight_bytes(model), peak_activation_bytes=peak)


def models_table(in_leads: int = 1, n_classes: int = 3) -> Table:
    """A rich table of every registered model's cost per 2500-sample window and whether it fits `MCU_BUDGET`."""
    from rich.table import Table

    budget = f"<= {MCU_BUDGET['int8_weight_bytes'] // 1024} KB weights, <= {MCU_BUDGET['activation_bytes'] // 1024} KB activations"
    table = Table(title=f"Models ({in_leads} lead(s), {n_classes} classes, {WINDOW}-sample window)", caption=f"MCU budget: {budget}")
    for col in ("model", "params", "MACs/window", "int8 weight bytes", "peak activation bytes"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_column("fits MCU budget")
    for name in MODELS:
        s = model_stats(build_model(name, in_leads, n_classes), in_leads)
        fits = "[green]yes[/]" if s.fits() else "[red]no[/]"
        table.add_row(name, f"{s.params:,}", f"{s.macs:,}", f"{s.int8_weight_bytes:,}", f"{s.peak_activation_bytes:,}", fits)
    return table
