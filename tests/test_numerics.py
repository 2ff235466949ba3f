"""Numerics: float32 or bf16 autocast, channels_last, and the choice ``precision=auto`` makes."""

import pytest
import torch
from helpers import fit

from localizer.engine import numerics, training
from localizer.engine import run as runs
from localizer.errors import ConfigError
from localizer.model.models import build_model
from localizer.engine.numerics import Numerics, choose_numerics, default_numerics
from localizer.recipe import TrainConfig
from localizer.engine.run import load_model

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


def test_auto_probes_on_a_cpu_with_native_bf16(monkeypatch):
    model = build_model("efficientnet_lite0", weights=None)
    monkeypatch.setattr(numerics, "native_bf16", lambda device: False)
    assert choose_numerics("auto", CPU, model)[0].bf16 is False  # no native bf16: no probe, float32
    monkeypatch.setattr(numerics, "native_bf16", lambda device: True)
    for speedup, bf16 in ((2.0, True), (1.1, True), (1.05, False), (0.7, False)):
        monkeypatch.setattr(numerics, "probe_bf16_speedup", lambda *args, s=speedup: s)
        chosen, why = choose_numerics("auto", CPU, model, image_size=64)
        assert chosen.bf16 is bf16 and chosen.channels_last and f"{speedup:.2f}x" in why
    assert choose_numerics("fp32", CPU, model)[0].bf16 is False  # forced: never probed


def test_probe_times_both_formats_without_touching_the_model():
    model = build_model("efficientnet_lite0", weights=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    speedup = numerics.probe_bf16_speedup(model, CPU, image_size=64)
    assert 0.05 < speedup < 20
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).is_contiguous()


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
    monkeypatch.setattr(runs, "native_bf16", lambda device: True)
    assert load_model(run / "checkpoints" / "best.pt")[1]["numerics"] == default_numerics(CPU, "bf16")
    monkeypatch.setattr(runs, "native_bf16", lambda device: False)  # e.g. evaluated on an older CPU
    assert load_model(run / "checkpoints" / "best.pt")[1]["numerics"] == default_numerics(CPU, "fp32")
    # precision is a runtime field: resume with auto keeps the format the run began in, without probing
    monkeypatch.setattr(training, "native_bf16", lambda device: True)
    monkeypatch.setattr(training, "choose_numerics", lambda *args: pytest.fail("probed again on resume"))
    auto = TrainConfig(**{**config.__dict__, "precision": "auto"})
    history = fit(auto, run, resume=True, progress=False)
    assert history["epoch"].tolist() == [1, 2]
    assert runs.load_checkpoint(run / "checkpoints" / "last.pt")["precision_used"] == "bf16"
