"""Training on every annotated animal: the manifest's column of all boxes, their targets and augmentation,
and the ``largest`` head (a soft-argmax box checked against the largest detected animal)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import fit

from localizer.engine.checkpoints import load_model
from localizer.engine import training
from localizer.data.batch_augment import AugmentParams, apply_augment
from localizer.boxes import ALL_BOXES_COLUMN, boxes_text, empty_boxes, parse_boxes_text
from localizer.model.geometry import edge_distances, soft_argmax
from localizer.data.datasets import MAX_BOXES, all_box_targets, box_targets
from localizer.errors import DataError
from localizer.model.detection import ANIMAL_NMS_IOU, ANIMAL_SCORE, choose_largest, detect_animals
from localizer.model.heads import BINS, DenseHead, LargestHead
from localizer.model.losses import animal_quality, animals_loss, soft_argmax_loss
from localizer.model.models import build_model
from localizer.recipe import TrainConfig
from localizer.data.split import assign_split
from localizer.data.validation import scan_dataset


def test_boxes_text_lists_every_box_largest_first_and_reads_back():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 30, 25], [1, 1, 2, 2]])  # areas 100, 500, 1
    text = boxes_text(boxes)
    assert text == "5.00 5.00 30.00 25.00;0.00 0.00 10.00 10.00;1.00 1.00 2.00 2.00"
    assert parse_boxes_text(text).tolist() == [[5, 5, 30, 25], [0, 0, 10, 10], [1, 1, 2, 2]]
    for bad in ("1 2 3", "", "1 2 3 4;5 6"):
        with pytest.raises(ValueError, match="not a list of boxes"):
            parse_boxes_text(bad)


def test_all_box_targets_are_normalized_padded_and_capped():
    table = pd.DataFrame({"path": ["a.jpg"], "width": [100], "height": [50],
                          ALL_BOXES_COLUMN: ["10 5 60 45;0 0 20 10"]})
    targets = all_box_targets(table, 3)
    assert targets.shape == (1, 3, 4) and targets.dtype == np.float32
    np.testing.assert_allclose(targets[0], [[0.1, 0.1, 0.6, 0.9], [0.0, 0.0, 0.2, 0.2], [0, 0, 0, 0]], atol=1e-6)
    np.testing.assert_allclose(all_box_targets(table, 1)[0], [[0.1, 0.1, 0.6, 0.9]], atol=1e-6)  # the largest kept
    with pytest.raises(DataError, match="no 'boxes' column"):
        all_box_targets(table.drop(columns=ALL_BOXES_COLUMN), 3)
    with pytest.raises(DataError, match=r"^a\.jpg: bad-boxes"):
        all_box_targets(table.assign(boxes="1 2 3"), 3)


def test_scan_keeps_every_box_only_when_asked(synthetic_data):
    table = scan_dataset(synthetic_data / "yolo", progress=False, all_boxes=True).table
    assert (table["n_boxes"] > 1).any()
    for row in table.itertuples():
        boxes = parse_boxes_text(row.boxes)
        assert len(boxes) == row.n_boxes
        assert boxes[0] == pytest.approx([row.xmin, row.ymin, row.xmax, row.ymax], abs=0.005)  # the primary first
    assert ALL_BOXES_COLUMN not in scan_dataset(synthetic_data / "yolo", progress=False).table


def _params(flip: bool, shift: float = 0.0) -> AugmentParams:
    return AugmentParams(flip=torch.tensor([flip]), factors=torch.ones(1, 3), order=(),
                         affine=torch.tensor([shift != 0.0]), scale=torch.ones(1), shift=torch.tensor([[shift, 0.0]]))


def test_augmentation_moves_every_animal_and_keeps_the_padding():
    images = torch.zeros(1, 3, 100, 100, dtype=torch.uint8)
    boxes = torch.tensor([[[0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.9, 0.8], [0.0, 0.0, 0.0, 0.0]]])
    _, flipped = apply_augment(images, boxes, _params(flip=True))
    np.testing.assert_allclose(flipped[0], [[0.6, 0.2, 0.9, 0.6], [0.1, 0.5, 0.5, 0.8], [0, 0, 0, 0]], atol=1e-6)
    # 30 px to the right: the primary box moves whole; one animal leaves the frame, one keeps a third of its area
    boxes = torch.tensor([[[0.1, 0.2, 0.4, 0.6], [0.8, 0.5, 1.0, 0.8], [0.6, 0.1, 0.9, 0.3], [0, 0, 0, 0]]])
    _, moved = apply_augment(images, boxes, _params(flip=False, shift=0.3))
    np.testing.assert_allclose(moved[0], [[0.4, 0.2, 0.7, 0.6], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], atol=1e-6)
    _, primary = apply_augment(images, boxes[:, 0], _params(flip=False, shift=0.3))  # the (N, 4) path agrees
    np.testing.assert_allclose(primary, moved[:, 0], atol=1e-6)


def test_padding_is_an_empty_box_and_per_cell_distances_match_per_image_ones():
    boxes = torch.tensor([[[0.1, 0.2, 0.4, 0.6], [0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.9], [1.0, 0.0, 1.0, 0.0]]])
    assert empty_boxes(boxes).tolist() == [[False, True, True, True]]  # zeros, no width, a flipped zero row
    centres = DenseHead(8, (2, 3)).centres
    box = torch.tensor([[0.1, 0.2, 0.6, 0.9]])
    per_cell = edge_distances(centres, box[:, None].expand(1, 6, 4))  # (N, L, 4): the same box for every cell
    assert torch.equal(per_cell, edge_distances(centres, box))
    assert per_cell[0, 4].tolist() == pytest.approx([0.4, 0.55, 0.1, 0.15])  # from cell 4's centre (0.5, 0.75)


def test_animal_quality_hand_computed():
    centres = DenseHead(8, (2, 2)).centres  # (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)
    a, b, whole = [0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]
    quality, animal = animal_quality(centres, torch.tensor([[a, b, [0.0] * 4]]))
    assert quality[0].tolist() == [1.0, 0.0, 0.0, 1.0]  # each box's centre cell; the padding answers for none
    assert animal[0, [0, 3]].tolist() == [0, 1]
    # the whole image around box a: cell 0 is a's (centerness 1), the others the whole image's, each at
    # sqrt(0.25 / 0.75 * 0.25 / 0.75) = 1/3
    quality, animal = animal_quality(centres, torch.tensor([[a, whole]]))
    assert quality[0].tolist() == pytest.approx([1.0, 1 / 3, 1 / 3, 1 / 3])
    assert animal[0].tolist() == [0, 1, 1, 1]


def test_animals_loss_hand_computed():
    # one row of two cells, centres (0.25, 0.5) and (0.75, 0.5), each predicting exactly its half of the image
    centres = DenseHead(8, (1, 2)).centres
    bins = 5  # positions 0, 0.25, 0.5, 0.75, 1: l, t, r, b = 0.25, 0.5, 0.25, 0.5 are bins 1, 2, 1, 2
    logits = torch.full((1, 2, 4, bins), -1e4)
    for edge, k in enumerate((1, 2, 1, 2)):
        logits[0, :, edge, k] = 1e4
    scores = torch.zeros(1, 2)  # probability 0.5 each
    halves = torch.tensor([[[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]])
    # two lions: the boxes are exact (loss 0); each cell's score term is -log 0.5, summed and divided by 2
    assert animals_loss("giou", logits, scores, centres, halves, dfl=0.25).item() == pytest.approx(math.log(2))
    # one lion: cell 1 is background (BCE towards 0, also log 2), the sum divided by 1
    one = halves.clone()
    one[0, 1] = 0.0
    assert animals_loss("giou", logits, scores, centres, one, dfl=0.25).item() == pytest.approx(2 * math.log(2))


def test_choose_largest_takes_the_largest_animal_where_the_box_disagrees():
    cells = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.4, 0.2, 1.0, 1.0], [0.41, 0.21, 1.0, 1.0], [0, 0, 1, 1]]])
    scores = torch.tensor([[5.0, 5.0, 4.0, -5.0]])  # cell 2 repeats cell 1 (removed by NMS), cell 3 scores low
    between = torch.tensor([[0.3, 0.3, 0.6, 0.6]])  # IoU 0.06 / 0.51 = 0.12 with the largest animal (cell 1)
    assert torch.equal(choose_largest(between, cells, scores), cells[:, 1])
    agreeing = torch.tensor([[0.45, 0.25, 1.0, 0.95]])  # IoU 0.4675 / 0.48 = 0.97 with the largest animal
    assert torch.equal(choose_largest(agreeing, cells, scores), cells[:, 1])  # always the largest
    assert torch.equal(choose_largest(between, cells, torch.full((1, 4), -5.0)), between)


def test_non_maximum_suppression_at_0_7_keeps_the_whole_animal_beside_a_better_scored_part():
    part, whole = [0.2, 0.2, 0.8, 0.8], [0.1, 0.1, 0.9, 0.9]  # IoU 0.36 / 0.64 = 0.5625
    cells, scores = torch.tensor([[part, whole]]), torch.tensor([[5.0, 4.0]])
    box = torch.tensor([[0.0, 0.0, 0.1, 0.1]])
    assert ANIMAL_NMS_IOU == 0.7
    assert torch.equal(detect_animals(cells, scores)[0], cells[0])  # both kept, better scored first
    assert torch.equal(choose_largest(box, cells, scores), cells[:, 1])
    assert torch.equal(detect_animals(cells, scores, nms_iou=0.5)[0], cells[0, :1])
    assert torch.equal(choose_largest(box, cells, scores, nms_iou=0.5), cells[:, 0])


def _per_image_detections(cell_boxes, cell_scores, score=ANIMAL_SCORE, nms_iou=ANIMAL_NMS_IOU):
    """What detect_animals computes, with torchvision's nms one image at a time."""
    from torchvision.ops import nms

    probs = cell_scores.float().sigmoid()
    return [boxes[p >= score][nms(boxes[p >= score], p[p >= score], nms_iou)] for boxes, p in zip(cell_boxes, probs)]


def _per_image_largest(box, cell_boxes, cell_scores):
    """What choose_largest computes, one image at a time: the largest detection, else the box."""
    from torchvision.ops import box_area

    out = box.clone()
    for i, found in enumerate(_per_image_detections(cell_boxes, cell_scores)):
        if len(found):
            out[i] = found[box_area(found).argmax()]
    return out


@pytest.mark.parametrize("seed", range(5))
def test_one_batched_nms_gives_what_the_per_image_loop_gave(seed):
    generator = torch.Generator().manual_seed(seed)
    cells = torch.rand(6, 40, 2, 2, generator=generator).sort(dim=2).values.reshape(6, 40, 4)  # (min, max) of x, y
    scores = 2 * torch.randn(6, 40, generator=generator)
    scores[2] = -10.0  # an image with no detection
    box = torch.rand(6, 2, 2, generator=generator).reshape(6, 4)  # unordered too: choose_largest sanitizes it
    for got, expected in zip(detect_animals(cells, scores), _per_image_detections(cells, scores), strict=True):
        assert torch.equal(got, expected)
    assert len(detect_animals(cells, scores)[2]) == 0
    assert torch.equal(choose_largest(box, cells, scores), _per_image_largest(box, cells, scores))


def test_largest_head_trains_on_every_box_saves_and_loads(synthetic_data, tmp_path):
    model = build_model("efficientnet_lite0", weights=None, head="largest", image_size=96).eval()
    assert isinstance(model.head, LargestHead) and model.head.grid == (3, 3)
    with torch.no_grad():
        feature_map = model.feature_map(torch.randn(2, 3, 96, 96))
        box_logits, cell_logits, cell_scores = model.head.outputs(feature_map)
        assert box_logits.shape == (2, 4, BINS) and cell_logits.shape == (2, 9, 4, BINS)
        expected = choose_largest(soft_argmax(box_logits), model.head.animals.boxes(cell_logits), cell_scores)
        assert torch.equal(model.head(feature_map), expected)
        # its loss: the soft-argmax part's on the primary box plus the dense part's on every box
        targets = torch.tensor([[[0.1, 0.1, 0.6, 0.7], [0.6, 0.2, 0.9, 0.5]], [[0.2, 0.3, 0.8, 0.9], [0.0] * 4]])
        head = build_model("efficientnet_lite0", weights=None, head="largest", image_size=96, loss="giou",
                           dfl=0.25).head.eval()
        loss, boxes = head.loss(feature_map, targets)
        box_logits, cell_logits, cell_scores = head.outputs(feature_map)
        primary, _ = soft_argmax_loss("giou", box_logits, targets[:, 0], 0.25)
        dense = animals_loss("giou", cell_logits, cell_scores, head.animals.centres, targets, 0.25)
        assert loss.item() == pytest.approx((primary + dense).item(), rel=1e-6) and torch.equal(boxes, head(feature_map))
    config = TrainConfig(data=str(synthetic_data / "yolo"), image_size=64, epochs=1, batch_size=8,
                         backbone="efficientnet_lite0", weights=None, workers=0, cache_dir=str(tmp_path / "cache"),
                         head="largest", dfl=0.25, loss="giou", precision="fp32")
    manifest = assign_split(scan_dataset(synthetic_data / "yolo", progress=False, all_boxes=True).table, seed=42)
    train_loader, _ = training.make_loaders(config, manifest, torch.device("cpu"), progress=False)
    _, targets = next(iter(train_loader))
    assert targets.shape[1:] == (MAX_BOXES, 4)
    plain = manifest.drop(columns=ALL_BOXES_COLUMN).iloc[:2]  # a manifest without every box: the primary one
    assert box_targets(plain).shape == (2, 1, 4)
    assert box_targets(plain)[1, 0].tolist() == pytest.approx(
        [plain.iloc[1].xmin / plain.iloc[1].width, plain.iloc[1].ymin / plain.iloc[1].height,
         plain.iloc[1].xmax / plain.iloc[1].width, plain.iloc[1].ymax / plain.iloc[1].height])
    first = manifest[manifest["split"] == "train"].iloc[0]
    assert train_loader.dataset[0][1][0].tolist() == pytest.approx(
        [first.xmin / first.width, first.ymin / first.height, first.xmax / first.width, first.ymax / first.height])
    history = fit(config, tmp_path / "run", progress=False)
    assert history["epoch"].tolist() == [1]
    assert ALL_BOXES_COLUMN in pd.read_csv(tmp_path / "run" / "manifest.csv")
    loaded, info = load_model(tmp_path / "run" / "checkpoints" / "best.pt")
    assert isinstance(loaded.head, LargestHead) and info["config"].head == "largest"
