"""Metrics: per-image IoU against hand-computed values and torchvision's box_iou, and its summaries."""

import pytest
import torch
from torchvision.ops import box_iou

from localizer.metrics import paired_iou, summarize


def test_paired_iou_of_hand_computed_pairs():
    pred = torch.tensor([[0, 0, 2, 2], [0, 0, 3, 1], [0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [0, 0, 2, 2],
                         [0, 0, 4, 2]])
    target = torch.tensor([[1, 1, 3, 3], [1, 0, 3, 2], [0, 0, 1, 1], [1, 0, 2, 1], [0, 0, 2, 2], [1, 1, 1.5, 1.5],
                           [1, 0, 3, 2]])
    # 1 / (4 + 4 - 1); 2 / (3 + 4 - 2); identical; edges touch: 0; swapped corners reordered; 0.25 / 4 inside;
    # a prediction beyond the largest coordinate (3) clamped to it: [0, 0, 3, 2], 4 / (6 + 4 - 4)
    expected = [1 / 7, 0.4, 1.0, 0.0, 1.0, 0.0625, 2 / 3]
    assert paired_iou(pred, target).tolist() == pytest.approx(expected, abs=1e-7)


def test_paired_iou_is_the_diagonal_of_box_iou():
    generator = torch.Generator().manual_seed(0)
    mins = 0.6 * torch.rand(2, 500, 2, generator=generator)
    sizes = 0.01 + 0.39 * torch.rand(2, 500, 2, generator=generator)
    pred, target = torch.cat([mins, mins + sizes], dim=-1)  # valid xyxy boxes inside [0, 1]
    ious = paired_iou(pred, target)
    assert ious.shape == (500,) and ious.dtype == torch.float32
    assert torch.allclose(ious, torch.diagonal(box_iou(pred, target)), atol=1e-6)
    assert (ious == 0).any() and (ious > 0.5).any()  # both overlapping and disjoint pairs were drawn


def test_paired_iou_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"both be \(N, 4\), got \(2, 4\) and \(3, 4\)"):
        paired_iou(torch.zeros(2, 4), torch.zeros(3, 4))
    assert paired_iou(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0,)


def test_summarize_counts_strictly_above_each_threshold():
    summary = summarize([0.5, 0.75, 0.8, 0.96])
    assert summary["mean_iou"] == pytest.approx(0.7525)
    assert (summary["acc_50"], summary["acc_75"], summary["n"]) == (0.75, 0.5, 4)
    # thresholds 0.50..0.95: 3 of 4 above at 0.50, 0.55, 0.60, 0.65, 0.70; 2 at 0.75; 1 at 0.80..0.95
    assert summary["acc_50_95"] == pytest.approx((5 * 0.75 + 0.5 + 4 * 0.25) / 10)
