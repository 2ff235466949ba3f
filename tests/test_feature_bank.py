"""The feature bank: K augmented views of each training photo through the frozen layers, computed once."""

import pytest
import torch

from localizer.data.batch_augment import BatchAugment
from localizer.engine.feature_bank import FeatureBank
from localizer.engine.numerics import default_numerics
from localizer.model.models import build_model


BOX = torch.tensor([0.1, 0.2, 0.5, 0.6])
IMAGES = torch.randint(0, 256, (10, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(123))
LOADER = [(IMAGES[a:b], BOX.repeat(b - a, 1, 1)) for a, b in ((0, 4), (4, 8), (8, 10))]


def _bank(model, views=3, seed=0):
    return FeatureBank(model, LOADER, BatchAugment(affine_p=0.5), default_numerics(torch.device("cpu")), views, seed)


def test_bank_holds_each_view_of_each_photo_and_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", weights=None, head="softargmax", image_size=64, freeze_stride=8).eval()
    state = torch.get_rng_state()
    bank = _bank(model)
    assert torch.equal(torch.get_rng_state(), state)
    assert bank.features.shape == (3, 10, 40, 8, 8)  # lite0's stride-8 stage: 40 channels, 64 / 8
    assert bank.targets.shape == (3, 10, 1, 4)
    assert not torch.equal(bank.features[0], bank.features[1])  # views are augmented differently
    kept = (bank.targets[:, :, 0] == BOX).all(dim=-1)
    flipped = (bank.targets[:, :, 0] - torch.tensor([0.5, 0.2, 0.9, 0.6])).abs().max(dim=-1).values < 1e-6
    assert kept.any() and flipped.any()  # neither flipped nor scaled, or only flipped (x1 0.1 -> 1 - 0.5)
    again = _bank(model)
    assert torch.equal(again.features, bank.features) and torch.equal(again.targets, bank.targets)
    assert not torch.equal(_bank(model, seed=1).features, bank.features)


def test_an_epoch_takes_every_photo_once_in_one_of_its_views():
    model = build_model("efficientnet_lite0", weights=None, head="softargmax", image_size=64, freeze_stride=8).eval()
    bank = _bank(model, views=2)
    batches = list(bank.epoch(4, torch.Generator().manual_seed(5)))
    assert [len(f) for f, _ in batches] == [4, 4, 2]  # ceil(10 / 4) batches, the last one smaller
    features = torch.cat([f for f, _ in batches])
    found = [next((v, n) for v in range(2) for n in range(10) if torch.equal(bank.features[v, n], f)) for f in features]
    assert sorted(n for _, n in found) == list(range(10))
    assert {v for v, _ in found} == {0, 1}
    replay = torch.cat([f for f, _ in bank.epoch(4, torch.Generator().manual_seed(5))])
    assert torch.equal(replay, features)


def test_training_from_the_bank_matches_training_from_the_photos():
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", weights=None, head="softargmax", image_size=64, freeze_stride=16).train()
    images = torch.rand(4, 3, 64, 64)
    targets = torch.tensor([[[0.1, 0.2, 0.5, 0.6]]]).repeat(4, 1, 1)
    torch.manual_seed(1)
    direct, _ = model.loss(images, targets)
    torch.manual_seed(1)
    banked, _ = model.loss(model.frozen_features(images), targets, from_frozen=True)
    assert torch.equal(direct, banked)



@pytest.mark.parametrize("views", [0, 2])
def test_a_frozen_run_validates_on_the_frozen_features_as_on_the_photos(synthetic_data, tmp_path, views):
    from localizer.engine.numerics import default_numerics
    from localizer.engine.run import Run
    from localizer.engine.training import make_loaders, run_epoch, train
    from localizer.recipe import recipe_for

    recipe = recipe_for("smoke", data=str(synthetic_data / "yolo"), epochs=1, freeze_stride=16, views=views,
                        workers=0)
    run = Run.create(recipe, tmp_path / "run", progress=False)
    history = train(run, progress=False)
    model, _ = run.load_model("last.pt")
    numerics = default_numerics(torch.device("cpu"))
    with torch.no_grad():
        val_loss, val_iou = run_epoch(model, make_loaders(run.config, run.manifest, numerics.device, False)[1],
                                      numerics, progress=False)
    assert val_loss == pytest.approx(history["val_loss"].iloc[0], abs=1e-5)
    assert val_iou == pytest.approx(history["val_iou"].iloc[0], abs=1e-5)
