"""Training with a frozen backbone prefix: the frozen layers' features stand for the photos."""

import pytest
import torch

from localizer.model.models import build_model


def test_a_loss_from_the_frozen_features_is_the_loss_from_the_photos():
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", weights=None, head="softargmax", image_size=64, freeze_stride=16).train()
    images = torch.rand(4, 3, 64, 64)
    targets = torch.tensor([[[0.1, 0.2, 0.5, 0.6]]]).repeat(4, 1, 1)
    torch.manual_seed(1)
    direct, _ = model.loss(images, targets)
    torch.manual_seed(1)
    from_features, _ = model.loss(model.frozen_features(images), targets, from_frozen=True)
    assert torch.equal(direct, from_features)


def test_a_frozen_run_validates_on_the_frozen_features_as_on_the_photos(synthetic_data, tmp_path):
    from localizer.engine.numerics import default_numerics
    from localizer.engine.run import Run
    from localizer.engine.training import make_loaders, run_epoch, train
    from localizer.recipe import recipe_for

    recipe = recipe_for("smoke", data=str(synthetic_data / "yolo"), epochs=1, freeze_stride=16, workers=0)
    run = Run.create(recipe, tmp_path / "run", progress=False)
    history = train(run, progress=False)
    model, _ = run.load_model("last.pt")
    numerics = default_numerics(torch.device("cpu"))
    with torch.no_grad():
        val_loss, val_iou = run_epoch(model, make_loaders(run.config, run.manifest, numerics.device, False)[1],
                                      numerics, progress=False)
    assert val_loss == pytest.approx(history["val_loss"].iloc[0], abs=1e-5)
    assert val_iou == pytest.approx(history["val_iou"].iloc[0], abs=1e-5)
