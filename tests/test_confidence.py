"""The confidence of a prediction (issue 31), against values computed by hand: the heads' quality
estimate, the confidence of two made-up predictions, the risk-coverage table and Spearman's correlation
of a hand-made table, the review ranking, and the threshold ``predict --flag-below`` takes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from localizer.engine.inference import box_confidence, predict_batch, unzoom_boxes, zoom_out
from localizer.engine.numerics import default_numerics
from localizer.metrics import confidence_summary, covered, risk_coverage, spearman
from localizer.model.geometry import soft_argmax
from localizer.model.detection import choose_largest
from localizer.model.heads import BINS, LargestHead, LinearHead, SoftArgmaxHead, edge_quality
from localizer.engine.review import review_ranking
from localizer.report.results import confidence_table, format_confidence

# a hand-made table: five photos, their IoU and confidence
IOUS = [0.9, 0.2, 0.7, 0.6, 0.4]
CONFIDENCE = [0.8, 0.1, 0.9, 0.5, 0.3]


def test_risk_coverage_of_a_hand_made_table():
    table = risk_coverage(IOUS, CONFIDENCE)
    # most confident first: 0.9 (IoU 0.7), 0.8 (0.9), 0.5 (0.6), 0.3 (0.4), 0.1 (0.2)
    # 50 %: ceil(2.5) = 3 photos, all above 0.5, mean (0.7 + 0.9 + 0.6) / 3; 80 %: 4 photos, 3 above 0.5;
    # 90 % and 100 %: all 5, 3 above 0.5, mean 2.8 / 5
    assert table["coverage"].tolist() == [0.5, 0.8, 0.9, 1.0]
    assert table["photos"].tolist() == [3, 4, 5, 5]
    assert table["acc_50"].tolist() == pytest.approx([1.0, 0.75, 0.6, 0.6])
    assert table["mean_iou"].tolist() == pytest.approx([2.2 / 3, 0.65, 0.56, 0.56])
    assert table["min_confidence"].tolist() == pytest.approx([0.5, 0.3, 0.1, 0.1])
    assert table["tied"].tolist() == [False] * 4  # five different confidences
    # IoU 0.5 is no hit (PASCAL VOC: IoU > 0.5); ties in confidence keep the table's order, and say so
    tied = risk_coverage([0.5, 0.9, 0.1], [0.7, 0.7, 0.2], [1 / 3, 2 / 3, 1])
    assert tied["acc_50"].tolist() == [0.0, 0.5, 1 / 3] and tied["mean_iou"].tolist() == pytest.approx([0.5, 0.7, 0.5])
    assert tied["tied"].tolist() == [True, False, False]  # 1/3 keeps one of the two 0.7s


def test_spearman_of_a_hand_made_table():
    # ranks of the confidence 4 1 5 3 2, of the IoU 5 1 4 3 2: sum of d^2 = 2, rho = 1 - 6 x 2 / (5 x 24)
    assert spearman(CONFIDENCE, IOUS) == pytest.approx(0.9)
    assert spearman([0.1, 0.2, 0.3], [0.9, 0.5, 0.4]) == pytest.approx(-1.0)
    assert math.isnan(spearman([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]))  # a constant confidence ranks nothing
    assert math.isnan(spearman([0.5], [0.1]))
    with pytest.raises(ValueError, match="2 confidences for 3 IoUs"):
        spearman([0.1, 0.2], [0.1, 0.2, 0.3])
    summary = confidence_summary(IOUS, CONFIDENCE)
    assert summary["spearman"] == pytest.approx(0.9) and summary["risk_coverage"][1]["photos"] == 4


def test_covered_keeps_at_least_the_share_without_float_error():
    assert covered(365, 0.8) == 292  # 0.8 x 365 is 292.00000000000006 in floating point
    assert (covered(89, 0.8), covered(89, 0.5), covered(3, 0.01), covered(0, 0.5)) == (72, 45, 1, 0)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="a coverage is a share in"):
            covered(10, bad)


def test_confidence_table_and_its_text_in_percent():
    metrics = {"split": "val", "n": 5, "confidence": confidence_summary(IOUS, CONFIDENCE)}
    table = confidence_table(metrics)
    assert table.index.tolist() == ["50 %", "80 %", "90 %", "100 %"]
    assert table.loc["80 %"].tolist() == [4, 75.0, 65.0, "0.300"]
    assert format_confidence(metrics).startswith("confidence vs IoU (val split, n = 5): Spearman 0.900;")
    assert "tied" not in format_confidence(metrics)


def test_a_confidence_that_ranks_nothing_is_said_to():
    # the smoke run's 8 test photos, every box with confidence 0: no row is chosen by the confidence
    metrics = {"split": "test", "n": 8, "confidence": confidence_summary([0.1, 0.3, 0.0, 0.2, 0.0, 0.4, 0.0, 0.1],
                                                                        [0.0] * 8)}
    table = confidence_table(metrics)
    assert table["lowest confidence"].tolist() == ["0.000 tied", "0.000 tied", "0.000", "0.000"]  # 4, 7, 8, 8 kept
    text = format_confidence(metrics)
    assert "Spearman undefined" in text and "nan" not in text
    assert text.splitlines()[-1].startswith("tied: photos of the row's lowest confidence are left out too (50 %, 80 %)")


def _logits(probs: list[list[float]]) -> torch.Tensor:
    """Per-edge logits ``(1, 4, K)`` whose softmax is ``probs`` (zeros as a very low logit)."""
    return torch.tensor(probs).clamp_min(1e-30).log()[None]


def test_edge_quality_by_hand():
    # K = 3 positions 0, 0.5, 1. Standard deviations: one-hot 0; (0.5, 0.5, 0): mean 0.25, std 0.25;
    # (0.5, 0, 0.5): 0.5, the most on [0, 1]; uniform: sqrt((0.25 + 0 + 0.25) / 3)
    logits = _logits([[0, 1, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    expected = 1 - 2 * (0 + 0.25 + 0.5 + math.sqrt(1 / 6)) / 4
    assert edge_quality(logits).tolist() == pytest.approx([expected], abs=1e-6)
    assert edge_quality(_logits([[0, 0, 1]] * 4)).item() == pytest.approx(1.0)
    assert edge_quality(_logits([[0.5, 0, 0.5]] * 4)).item() == pytest.approx(0.0, abs=1e-6)


def test_every_head_gives_its_boxes_and_a_quality():
    torch.manual_seed(0)
    feature_map = torch.randn(3, 8, 2, 2)
    for head in (LinearHead(8), SoftArgmaxHead(8, (2, 2)), LargestHead(8, (2, 2))):
        head.eval()
        with torch.no_grad():
            boxes, quality = head.predict(feature_map)
            assert torch.equal(boxes, head(feature_map)) and quality.shape == (3,)
            assert ((quality >= 0) & (quality <= 1)).all()
    assert torch.equal(LinearHead(8).eval().predict(feature_map)[1], torch.ones(3))  # no estimate of its own
    soft = SoftArgmaxHead(8, (2, 2)).eval()
    with torch.no_grad():
        assert torch.equal(soft.predict(feature_map)[1], edge_quality(soft.outputs(feature_map)))


def test_the_largest_head_rates_the_distributions_its_box_comes_from():
    head = LargestHead(8, (1, 2)).eval()  # two cells
    sharp = torch.full((4, BINS), -30.0)
    sharp[:, 8] = 30.0  # one-hot distances 8 / 31: quality 1
    flat = torch.zeros(4, BINS)  # uniform distributions: quality < 1
    box_logits = torch.stack([flat, flat])  # (N = 2, 4, BINS)
    cell_logits = torch.stack([torch.stack([flat, sharp]), torch.stack([flat, flat])])  # (2, L = 2, 4, BINS)
    scores = torch.tensor([[-9.0, 9.0], [-9.0, -9.0]])  # photo 0: cell 1 detects an animal; photo 1: none
    head.outputs = lambda feature_map: (box_logits, cell_logits, scores)
    boxes, quality = head.predict(torch.zeros(2, 8, 1, 2))
    cells = head.animals.boxes(cell_logits)
    assert torch.equal(boxes, choose_largest(soft_argmax(box_logits), cells, scores))
    assert torch.equal(boxes[0], cells[0, 1]) and torch.equal(boxes[1], soft_argmax(box_logits)[1])
    # photo 0: the detecting cell's sharp distances; photo 1: the soft-argmax part's flat edges
    assert quality.tolist() == pytest.approx([1.0, edge_quality(flat[None]).item()], abs=1e-5)


def test_confidence_of_two_made_up_predictions():
    plain = torch.tensor([[0.1, 0.0, 0.5, 1.0], [0.0, 0.0, 0.5, 0.5]])
    flipped = torch.tensor([[0.2, 0.0, 0.6, 1.0], [0.0, 0.0, 0.5, 0.5]])  # mirrored back
    zoomed = torch.tensor([[0.1, 0.0, 0.5, 0.8], [0.0, 0.0, 0.25, 0.5]])  # mapped back from the zoom-out
    quality, flipped_quality = torch.tensor([0.8, 1.0]), torch.tensor([0.6, 1.0])
    # photo 0: flip IoU 0.3 x 1 / 0.5 = 0.6, zoom IoU 0.32 / 0.4 = 0.8; min 0.6 times the mean quality 0.7
    # photo 1: flip IoU 1, zoom IoU 0.125 / 0.25 = 0.5; min 0.5 times 1
    assert box_confidence(plain, flipped, zoomed, quality, flipped_quality).tolist() == pytest.approx([0.42, 0.5])
    # boxes outside the photo, clamped to zero-area boxes on its border: 0 / 0, no agreement
    outside = torch.tensor([[1.2, 0.1, 1.5, 0.4]])
    assert box_confidence(outside, outside, outside, torch.ones(1), torch.ones(1)).tolist() == [0.0]


def test_the_zoom_out_view_and_its_boxes_map_back():
    assert unzoom_boxes(torch.tensor([0.05, 0.05, 0.95, 0.95]), 0.9).tolist() == pytest.approx([0, 0, 1, 1])
    image = torch.zeros(1, 1, 20, 20)
    image[..., 4:16, 4:16] = 1.0  # a square at normalized (0.2, 0.2, 0.8, 0.8)
    zoomed = zoom_out(image, 0.5)[0, 0]
    # at 0.5 the square covers (0.35, 0.35, 0.65, 0.65): pixels 7 to 12; the border is training's grey 0.5
    assert zoomed[8:12, 8:12].eq(1.0).all() and zoomed[:4].eq(0.5).all() and zoomed[5, 5] == 0.0
    assert unzoom_boxes(torch.tensor([0.35, 0.35, 0.65, 0.65]), 0.5).tolist() == pytest.approx([0.2, 0.2, 0.8, 0.8])


class Constant(torch.nn.Module):
    """The same box and quality for every image (its mirror, un-mirrored, is the box mirrored)."""

    def __init__(self, box, quality):
        super().__init__()
        self.box, self.quality = torch.nn.Parameter(torch.tensor(box)), quality

    def forward(self, x):
        return self.box.expand(len(x), 4)

    def predict(self, x):
        return self(x), torch.full((len(x),), self.quality)


@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("box, expected, fused", [
    # [0.1, 0, 0.8, 1] and its mirror [0.2, 0, 0.9, 1]: IoU 0.6 / 0.8 = 0.75; the zoom-out's box mapped back,
    # [0.056, 0, 0.833, 1] (clamped), has IoU 0.7 / 0.778 = 0.9 with it: min 0.75, times the quality 0.9
    ([0.1, 0.0, 0.8, 1.0], 0.675, [0.15, 0.0, 0.85, 1.0]),
    # a centred box is its own mirror (IoU 1); mapped back from the zoom-out it is [1/6, 1/6, 5/6, 5/6]:
    # IoU 0.36 / 0.444 = 0.81, times 0.9
    ([0.2, 0.2, 0.8, 0.8], 0.729, [0.2, 0.2, 0.8, 0.8]),
])
def test_predict_batch_gives_the_confidence_with_or_without_tta(tta, box, expected, fused):
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    numerics = default_numerics(torch.device("cpu"), "fp32")
    boxes, confidence = predict_batch(Constant(box, 0.9), images, tta=tta,
                                      numerics=numerics, confidence=True)
    assert confidence.tolist() == pytest.approx([expected, expected], abs=1e-5)
    assert boxes[0].tolist() == pytest.approx(fused if tta else box)


def test_review_ranks_confident_predictions_that_miss_their_label_first():
    table = pd.DataFrame({"file": list("abcde"), "split": ["val", "test", "train", "val", "test"],
                          "iou": [0.9, 0.1, 0.2, 0.5, 0.6], "confidence": [0.95, 0.5, 0.9, 0.8, 1.0]})
    ranked = review_ranking(table)
    # confidence x (1 - IoU): a 0.095, b 0.45, c 0.72, d 0.4, e 0.4 (ties: the lower IoU first)
    assert ranked["file"].tolist() == ["c", "b", "d", "e", "a"]
    assert ranked.index.tolist() == [1, 2, 3, 4, 5]
    assert ranked["disagreement"].tolist() == pytest.approx([0.72, 0.45, 0.4, 0.4, 0.095])
    assert ranked["seen_in_training"].tolist() == [True, False, False, False, False]
    assert np.array_equal(table["file"], list("abcde"))  # the input is left as it was


def test_risk_coverage_figure_draws_every_share_of_the_hand_made_table():
    from localizer.report import plots

    fig = plots.plot_risk_coverage(pd.DataFrame({"iou": IOUS, "confidence": CONFIDENCE}))
    lines = {line.get_gid(): line for line in fig.axes[0].get_lines()}
    # the 1, 2, ..., 5 most confident photos: IoUs 0.7, 0.9, 0.6, 0.4, 0.2
    assert lines[plots.GID_ACCURACY].get_xdata().tolist() == pytest.approx([20, 40, 60, 80, 100])
    assert lines[plots.GID_ACCURACY].get_ydata().tolist() == pytest.approx([100, 100, 100, 75, 60])
    assert lines[plots.GID_COVERED_IOU].get_ydata().tolist() == pytest.approx([70, 80, 220 / 3, 65, 56])
    assert "(n = 5)" in fig.axes[0].get_title()
    # the table's rows as dots on the curve: each at the share of the photos it keeps (3 of 5 for 50 %: 60 %)
    curve = dict(zip(lines[plots.GID_ACCURACY].get_xdata(), lines[plots.GID_ACCURACY].get_ydata()))
    dots = fig.axes[0].collections[0].get_offsets().tolist()
    assert [x for x, _ in dots] == pytest.approx([60, 80, 100, 100])
    assert all(curve[x] == pytest.approx(y) for x, y in dots)


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 160, 160), (2, 3, 50, 70)])
def test_zoom_out_is_torchvisions_affine_exactly_and_stays_float32_under_autocast(shape):
    from torchvision.transforms.v2 import functional as F

    from localizer.data.batch_augment import AFFINE_FILL

    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    expected = F.affine(x, angle=0.0, translate=[0.0, 0.0], scale=0.9, shear=[0.0, 0.0],
                        interpolation=F.InterpolationMode.BILINEAR, fill=AFFINE_FILL)
    assert torch.equal(zoom_out(x, 0.9), expected)
    assert torch.equal(zoom_out(x, 0.9)[..., 0], torch.full(shape[:-1], AFFINE_FILL))  # the border: training's grey
    with torch.autocast("cpu", dtype=torch.bfloat16):  # torchvision's would give images of 0 and 1 here
        assert torch.equal(zoom_out(x, 0.9), expected)
