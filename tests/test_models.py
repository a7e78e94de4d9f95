"""Models: shapes, rebuild from config, seed parameter counts, cost estimates, export to ONNX and int8 TFLite."""

import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.models.architectures import MCU_BUDGET, MODELS, ECGResNet, MCUResNet, Rebuildable, build_model, model_config, model_stats, models_table

MCU_NAMES = [name for name in MODELS if name.startswith("mcu")]
ONNX_OPS = {
    "Conv", "Relu", "Add", "MaxPool", "GlobalAveragePool", "ReduceMean", "Gemm", "MatMul",
    "Flatten", "Reshape", "Squeeze", "Unsqueeze",
}  # fmt: skip
TFLM_OPS = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED",
    "RESHAPE", "QUANTIZE", "DEQUANTIZE", "SOFTMAX", "PAD", "EXPAND_DIMS", "SQUEEZE",
}  # fmt: skip


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics, so folding them at export is actually exercised."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model.eval()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("leads,classes", [(1, 3), (12, 2)])
def test_forward_shape(name, leads, classes):
    model = build_model(name, leads, classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, leads, 2500))
    assert out.shape == (2, classes) and out.dtype == torch.float32


@pytest.mark.parametrize("name", list(MODELS))
def test_rebuild_from_config_gives_identical_outputs(name):
    model = _randomize_bn(build_model(name, 12, 3), seed=1)
    cfg = json.loads(json.dumps(model_config(model)))  # as a checkpoint stores it
    assert cfg["name"] == name and cfg["kwargs"]["in_leads"] == 12 and cfg["kwargs"]["n_classes"] == 3
    again = build_model(**cfg)
    again.load_state_dict(model.state_dict())
    again.eval()
    assert model_config(again) == cfg
    x = torch.randn(2, 12, 2500)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_model_config_keeps_custom_kwargs_and_checkpoint_call_style():
    model = build_model("mcu", 2, 3, stage_channels=(8, 16), stage_strides=[1, 2], blocks_per_stage=[1, 2], kernel_size=3)
    cfg = model_config(model)
    assert cfg["kwargs"]["stage_channels"] == [8, 16] and cfg["kwargs"]["blocks_per_stage"] == [1, 2]
    again = build_model(cfg["name"], **cfg["kwargs"])  # how pipeline.models.checkpoint calls it
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]
    direct = MCUResNet(in_leads=1, n_classes=3)
    assert model_config(direct) == model_config(build_model("mcu", 1, 3))


def test_unknown_model_and_bad_kwargs():
    with pytest.raises(ValueError, match="unknown model 'lstm'.*ecgnet.*mcu"):
        build_model("lstm", 1, 3)
    with pytest.raises(TypeError, match="plain JSON"):
        build_model("mcu", 1, 3, stage_channels=[torch.tensor(8)], stage_strides=[1], blocks_per_stage=1)
    with pytest.raises(ValueError, match="same length"):
        build_model("mcu", 1, 3, stage_channels=[8, 16], stage_strides=[1])
    with pytest.raises(TypeError):
        model_config(nn.Linear(2, 2))


def test_seed_parameter_counts():
    resnet = ECGResNet(in_leads=1, n_classes=3)
    n = sum(p.numel() for p in resnet.parameters())
    assert n == 2_158_211 and round(n / 1e6, 2) == 2.16
    assert sum(p.numel() for p in build_model("ecgnet", 1, 3).parameters()) == 52_483
    assert sum(p.numel() for p in build_model("inception", 1, 3).parameters()) == 389_763


def test_seed_state_dict_layout():
    """Same keys as the seed project's modules, so its checkpoints load."""
    keys = set(ECGResNet().state_dict())
    assert {"stem.0.weight", "layer1.0.downsample.0.weight", "layer3.1.bn2.running_var", "classifier.bias"} <= keys
    keys = set(build_model("inception", 1, 3).state_dict())
    assert "features.0.module1.branches.2.weight" in keys and "features.1.module1.bottleneck.weight" in keys
    assert "features.0.module1.bottleneck.weight" not in keys  # no bottleneck for one input channel
    assert "features.6.weight" in set(build_model("ecgnet", 1, 3).state_dict())


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, kernel_size=3, stride=2, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=-1))


def test_model_stats_by_hand():
    stats = model_stats(_Tiny(), in_leads=2, length=10)
    # conv: 5 outputs x 4 channels x (2 in x 3 taps) = 120 MACs; linear: 4 x 3 = 12
    assert stats.macs == 120 + 12
    assert stats.params == (2 * 4 * 3 + 4) + (4 * 3 + 3)
    # int8 weights 24 + 12, int32 biases 4 x (4 + 3)
    assert stats.int8_weight_bytes == 24 + 12 + 4 * 7
    # conv step: input 2x10 and output 4x5 alive (the ReLU fuses)
    assert stats.peak_activation_bytes == 20 + 20


def test_peak_activation_holds_the_residual_branch():
    stats = model_stats(build_model("mcu", 1, 3), in_leads=1)
    # first block of stage 1 (313 steps, 16 -> 24 channels): conv2 output, 1x1 shortcut output and the add's output
    assert stats.peak_activation_bytes == 3 * 313 * 24


def test_default_student_meets_budget():
    model = build_model("mcu", 1, 3)
    stats = model_stats(model, in_leads=1)
    assert stats.int8_weight_bytes <= MCU_BUDGET["int8_weight_bytes"]
    assert stats.peak_activation_bytes <= MCU_BUDGET["activation_bytes"]
    assert 0.5e6 <= stats.macs <= 20e6
    assert stats.fits()
    for name in MCU_NAMES:
        assert model_stats(build_model(name, 1, 3), in_leads=1).fits(), name


def test_student_uses_only_mcu_friendly_layers():
    allowed = (nn.Conv1d, nn.BatchNorm1d, nn.ReLU, nn.MaxPool1d, nn.Linear, nn.Dropout, nn.Sequential, Rebuildable)
    for name in MCU_NAMES:
        for m in build_model(name, 1, 3).modules():
            assert isinstance(m, allowed) or type(m).__name__ == "ResBlock", (name, type(m))


def test_models_table_lists_every_model():
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(models_table())
    text = console.export_text()
    for name in MODELS:
        assert name in text
    assert "2,158,211" in text and "yes" in text and "no" in text


def _export_onnx(model: nn.Module, path: Path) -> None:
    torch.onnx.export(
        model, (torch.zeros(1, 1, 2500),), str(path), input_names=["x"], output_names=["logits"],
        dynamo=True, external_data=False, verbose=False,
    )  # fmt: skip


@pytest.mark.parametrize("name", MCU_NAMES)
def test_student_onnx_export(name, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = _randomize_bn(build_model(name, 1, 3), seed=2)
    path = tmp_path / "model.onnx"
    _export_onnx(model, path)
    ops = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    assert set(ops) <= ONNX_OPS, ops  # no BatchNormalization: folded into the convs
    x = torch.randn(4, 1, 2500, generator=torch.Generator().manual_seed(3))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = torch.cat([model(x[i : i + 1]) for i in range(4)]).numpy()
    got = np.concatenate([session.run(None, {"x": x[i : i + 1].numpy()})[0] for i in range(4)])
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def _tflite_ops(buf: bytes) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    # Codes above 127 live in BuiltinCode only; the deprecated field saturates at 127.
    return [names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())] if not c.CustomCode() else c.CustomCode().decode() for c in codes]


@pytest.mark.slow
def test_student_int8_tflite_uses_only_tflm_builtins(tmp_path, monkeypatch):
    onnx2tf = pytest.importorskip("onnx2tf")
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # onnx2tf runs `onnxsim`
    monkeypatch.chdir(tmp_path)
    model = _randomize_bn(build_model("mcu", 1, 3), seed=4)
    _export_onnx(model, tmp_path / "model.onnx")
    calib = np.random.default_rng(5).standard_normal((16, 2500, 1)).astype(np.float32)  # NWC, as TF sees the input
    np.save(tmp_path / "calib.npy", calib)
    onnx2tf.convert(
        input_onnx_file_path=str(tmp_path / "model.onnx"), output_folder_path=str(tmp_path / "tf"),
        output_integer_quantized_tflite=True, custom_input_op_name_np_data_path=[["x", str(tmp_path / "calib.npy"), 0.0, 1.0]],
        non_verbose=True,
    )  # fmt: skip
    buf = (tmp_path / "tf" / "model_full_integer_quant.tflite").read_bytes()
    ops = _tflite_ops(buf)
    assert set(ops) <= TFLM_OPS, ops
    assert "CONV_2D" in ops and "MEAN" in ops and "FULLY_CONNECTED" not in ops  # the head is a 1x1 conv
    # TensorFlow Lite Micro itself loads and runs it: int8 (1, 2500, 1) in, int8 (1, 3) out
    interp = runtime.Interpreter.from_bytes(buf)
    detail = interp.get_input_details(0)
    assert tuple(detail["shape"]) == (1, 2500, 1) and detail["dtype"] == np.int8
    interp.set_input(np.zeros((1, 2500, 1), dtype=np.int8), 0)
    interp.invoke()
    out = interp.get_output(0)
    assert out.shape == (1, 3) and out.dtype == np.int8
