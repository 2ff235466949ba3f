"""Numerics: float32 or bf16 autocast, channels_last, and the choice ``precision=auto`` makes."""

from types import SimpleNamespace

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


@pytest.mark.parametrize("backbone, precision", [("resnet18", "bf16"), ("efficientnet_lite0", "fp32"),
                                                ("efficientnet_lite1", "fp32"), ("custom", "fp32")])
def test_auto_on_a_bf16_cpu_quotes_the_runs_own_backbone(monkeypatch, backbone, precision):
    monkeypatch.setattr(numerics, "native_bf16", lambda device: True)  # e.g. a Xeon with AMX
    chosen, why = choose_numerics("auto", CPU, SimpleNamespace(backbone_name=backbone))
    assert chosen == default_numerics(CPU, precision) and backbone in why
    if backbone in numerics.CPU_BF16_SPEED:  # the speed measured for this backbone (or the one it is built like)
        measured, speed = numerics.CPU_BF16_SPEED[backbone]
        assert f"measured {speed:.2f}x as fast in bf16" in why
        assert (f"in bf16 for {measured}" in why) == (measured != backbone)
        assert not [s for _, s in numerics.CPU_BF16_SPEED.values() if s != speed and f"{s:.2f}x" in why]


def test_auto_elsewhere_is_a_rule_of_the_device(monkeypatch):
    monkeypatch.setattr(numerics, "native_bf16", lambda device: True)
    assert choose_numerics("auto", CPU, None)[0].bf16 is False  # no model: no backbone known to gain
    lite0 = SimpleNamespace(backbone_name="efficientnet_lite0")
    assert choose_numerics("auto", torch.device("cuda"), lite0)[0].bf16 is True
    assert choose_numerics("auto", torch.device("mps"), lite0)[0] == Numerics(torch.device("mps"))
    monkeypatch.setattr(numerics, "native_bf16", lambda device: False)  # e.g. a CPU without AVX512-BF16 / AMX
    chosen, why = choose_numerics("auto", CPU, SimpleNamespace(backbone_name="resnet18"))
    assert chosen == default_numerics(CPU, "fp32") and why == "auto: float32, cpu has no native bf16"
    assert choose_numerics("bf16", CPU, lite0)[0].bf16 is True  # forced


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
