"""Numerics: float32 or bf16 autocast, channels_last, and the choice ``precision=auto`` makes."""

import time

import pytest
import torch
from helpers import fit

from localizer.engine import checkpoints, numerics, training
from localizer.engine import run as runs
from localizer.errors import ConfigError
from localizer.model.models import BACKBONES, build_model
from localizer.engine.numerics import Numerics, choose_numerics, default_numerics
from localizer.recipe import TrainConfig
from localizer.engine.checkpoints import load_model

CPU = torch.device("cpu")


def test_fixed_precisions_and_layouts():
    assert default_numerics(CPU, "fp32") == Numerics(CPU, bf16=False, channels_last=True)
    assert default_numerics(CPU, "bf16") == Numerics(CPU, bf16=True, channels_last=True)
    assert default_numerics(torch.device("mps"), "fp32").channels_last is False
    assert str(default_numerics(CPU, "bf16")) == "bf16 autocast + channels_last on cpu"
    with pytest.raises(ConfigError, match='^precision="fp16": expected one of'):
        TrainConfig(precision="fp16")
    with pytest.raises(ConfigError, match="^precision='half'"):
        choose_numerics("half", CPU)


class _NamedModel(torch.nn.Module):
    """A model that only has a backbone name: running it (as a timing probe would) fails the test."""

    def __init__(self, backbone_name):
        super().__init__()
        self.backbone_name = backbone_name
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        pytest.fail("precision=auto ran the model: the choice would depend on the machine's load")


def test_auto_is_a_rule_of_device_and_backbone_that_no_clock_can_move(monkeypatch):
    clock = iter([0.0, 1e6, 1e6 + 1e-9, 3.0, 1e-3, 5e5] * 10)  # wildly different "timings", if read
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(numerics, "native_bf16", lambda device: True)
    expected = {"resnet18": True, "efficientnet_lite0": False, "efficientnet_lite1": False,
                "efficientnet_lite2": False, "custom": False}
    for _ in range(3):  # the same answer every time
        for name, bf16 in expected.items():
            chosen, why = choose_numerics("auto", CPU, _NamedModel(name), image_size=64)
            assert chosen == default_numerics(CPU, "bf16" if bf16 else "fp32"), name
            assert name in why
    assert choose_numerics("auto", CPU, None)[0].bf16 is False  # no model: no backbone known to gain
    assert choose_numerics("auto", torch.device("cuda"), _NamedModel("efficientnet_lite0"))[0].bf16 is True
    assert choose_numerics("auto", torch.device("mps"), _NamedModel("resnet18"))[0] == Numerics(torch.device("mps"))
    monkeypatch.setattr(numerics, "native_bf16", lambda device: False)  # e.g. a CPU without AVX512-BF16 / AMX
    chosen, why = choose_numerics("auto", CPU, _NamedModel("resnet18"))
    assert chosen == default_numerics(CPU, "fp32") and why == "auto: float32, cpu has no native bf16"
    assert choose_numerics("bf16", CPU, _NamedModel("efficientnet_lite0"))[0].bf16 is True  # forced


def test_every_backbone_has_a_cpu_precision():
    assert set(numerics.CPU_PRECISION) == set(BACKBONES)
    assert build_model("efficientnet_lite1", weights=None).backbone_name in numerics.CPU_PRECISION


def test_bf16_predictions_stay_close_to_float32():
    torch.manual_seed(0)
    model = build_model("resnet18", weights=None, dropout=0.0).eval()
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
        fast = default_numerics(CPU, "bf16")
        fast.place_model(model)
        with fast.autocast():
            approx = model(fast.place_images(x)).float()
    assert approx.dtype == torch.float32
    assert torch.allclose(approx, reference, atol=0.05 * reference.abs().max().item())


def test_training_records_its_numerics_and_inference_and_resume_follow(synthetic_data, tmp_path, monkeypatch):
    config = TrainConfig(data=str(synthetic_data / "yolo"), image_size=48, epochs=2, batch_size=8,
                         backbone="efficientnet_lite0", weights=None, subset=20, workers=0,
                         cache_dir=str(tmp_path / "cache"), precision="bf16")
    run = tmp_path / "run"
    fit(config, run, progress=False, max_epochs=1)
    checkpoint = runs.load_checkpoint(run / "checkpoints" / "last.pt")
    assert (checkpoint["precision_used"], checkpoint["device_type"]) == ("bf16", "cpu")
    monkeypatch.setattr(checkpoints, "native_bf16", lambda device: True)
    assert load_model(run / "checkpoints" / "best.pt")[1]["numerics"] == default_numerics(CPU, "bf16")
    monkeypatch.setattr(checkpoints, "native_bf16", lambda device: False)  # e.g. evaluated on an older CPU
    assert load_model(run / "checkpoints" / "best.pt")[1]["numerics"] == default_numerics(CPU, "fp32")
    # precision is a runtime field: resume with auto keeps the format the run began in, without probing
    monkeypatch.setattr(training, "native_bf16", lambda device: True)
    monkeypatch.setattr(training, "choose_numerics", lambda *args: pytest.fail("probed again on resume"))
    auto = TrainConfig(**{**config.__dict__, "precision": "auto"})
    history = fit(auto, run, resume=True, progress=False)
    assert history["epoch"].tolist() == [1, 2]
    assert runs.load_checkpoint(run / "checkpoints" / "last.pt")["precision_used"] == "bf16"
