"""Metrics: per-image IoU against hand-computed values and torchvision's box_iou, and its summaries."""

import math

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from localizer.metrics import bootstrap_interval, paired_iou, score_intervals, summarize


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


def test_bootstrap_interval_of_fifty_zeros_and_fifty_ones():
    """Mean 0.5 with standard error sqrt(0.25 / 100) = 0.05: the normal approximation gives
    0.5 +- 1.96 x 0.05 = [0.402, 0.598]; 1,000 percentile resamples land within 0.02 of it."""
    values = np.r_[np.zeros(50), np.ones(50)]
    low, high = bootstrap_interval(values, seed=0)
    assert low == pytest.approx(0.5 - 1.96 * 0.05, abs=0.02) and high == pytest.approx(0.5 + 1.96 * 0.05, abs=0.02)
    assert bootstrap_interval(values, seed=0) == (low, high)  # seeded: the same interval again
    assert bootstrap_interval(values, seed=1) != (low, high)  # another seed, other resamples
    assert bootstrap_interval(values, confidence=0.5, seed=0)[1] - bootstrap_interval(values, confidence=0.5, seed=0)[0] < high - low


def test_bootstrap_interval_of_a_constant_sample_and_of_too_few_values():
    assert bootstrap_interval(np.full(25, 0.7)) == (0.7, 0.7)
    assert bootstrap_interval([True] * 25) == (1.0, 1.0)  # 100 % hits: no resample has a miss
    for few in ([0.3], []):
        low, high = bootstrap_interval(few)
        assert math.isnan(low) and math.isnan(high)


def test_score_intervals_bracket_each_score_from_the_same_resamples():
    ious = np.random.default_rng(3).beta(8, 2, size=200)
    intervals, summary = score_intervals(ious, seed=5), summarize(ious)
    assert set(intervals) == {"mean_iou", "acc_50", "acc_75", "acc_50_95"}
    for name, (low, high) in intervals.items():
        assert low < summary[name] < high, name
    assert intervals["acc_75"] == list(bootstrap_interval(ious > 0.75, seed=5))
    # the same seed draws the same photos for every score: the interval of 2 x IoU is 2 x the interval
    assert bootstrap_interval(2 * ious, seed=5) == pytest.approx(tuple(2 * v for v in intervals["mean_iou"]), abs=1e-12)
    # an IoU of 0.62 exceeds 3 of the 10 thresholds 0.50:0.95, one of 0.97 all 10
    assert score_intervals([0.62, 0.62, 0.62])["acc_50_95"] == pytest.approx([0.3, 0.3])
    assert score_intervals([0.62, 0.97])["acc_50_95"] == pytest.approx([0.3, 1.0])
