"""Localization metrics: per-image IoU of predicted vs ground-truth boxes, and their summaries.

* **IoU** (intersection over union, Jaccard index) per image: area of the intersection over area of
  the union, as :func:`torchvision.ops.box_iou` defines it, but of each box with its own target only
  (:func:`paired_iou`, O(N); ``box_iou`` computes the ``(N, M)`` matrix of every pair).
* **Accuracy at t**: share of images with IoU > t. ``acc_50`` is the PASCAL VOC criterion
  (Everingham et al., IJCV 2010: a detection is correct when IoU exceeds 0.5).
* ``acc_50_95``: mean of the accuracies at t = 0.50, 0.55, ..., 0.95 (the COCO-style threshold sweep).

* **95 % bootstrap intervals** of each of these scores over the scored photos (:func:`score_intervals`):
  every score is a mean over photos, and with 25 test photos one photo moves an accuracy by 4 points.
* **How well a confidence ranks the boxes** (the per-image confidence of a prediction, not the
  confidence level of an interval): Spearman's rank correlation of the confidence with the IoU
  (:func:`spearman`), and the risk-coverage table (:func:`risk_coverage`): the accuracy and mean IoU of
  the most confident share of the photos, as selective classification measures a classifier that may
  abstain (Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks", NeurIPS 2017).

Predicted boxes are made valid before scoring (:func:`sanitize_boxes`): a swapped box (xmax < xmin)
has its coordinates reordered and every box is clamped to the image ([0, 1] normalized), so a
zero-area prediction scores IoU 0, never NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torchvision.ops import box_area

#: IoU thresholds of the COCO-style sweep 0.50:0.95.
IOU_THRESHOLDS = tuple(np.round(np.arange(0.50, 0.951, 0.05), 2).tolist())
#: The bootstrap of :func:`score_intervals`: confidence level and number of resamples.
CONFIDENCE, RESAMPLES = 0.95, 1000
#: Coverages of the risk-coverage table: the most confident 50, 80, 90 and 100 % of the photos.
COVERAGES = (0.5, 0.8, 0.9, 1.0)


def sanitize_boxes(boxes: torch.Tensor, upper: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Valid xyxy boxes ``(N, 4)`` from raw predictions ``(N, 4)``: per axis min/max, clamped to
    ``[0, upper]`` (``upper = 1`` for normalized coordinates; a 0-d tensor is accepted, so nothing
    waits for a GPU). Differentiable almost everywhere."""
    x = torch.stack([boxes[..., 0], boxes[..., 2]], dim=-1)
    y = torch.stack([boxes[..., 1], boxes[..., 3]], dim=-1)
    fixed = torch.stack([x.amin(-1), y.amin(-1), x.amax(-1), y.amax(-1)], dim=-1)
    return torch.minimum(fixed.clamp_min(0.0), torch.as_tensor(upper, dtype=fixed.dtype, device=fixed.device))


def paired_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of each predicted box with its own target: ``diag(box_iou(pred, target))`` without the
    ``(N, N)`` matrix.

    The intersection of two xyxy boxes is the box from the larger of the two minima to the smaller
    of the two maxima, empty where they do not overlap; the union is the sum of the areas
    (:func:`torchvision.ops.box_area`) less the intersection, as in torchvision's ``box_iou``
    (``torchvision/ops/boxes.py``, ``_box_inter_union``), taken here pair by pair.

    Args:
        pred: ``(N, 4)`` xyxy predictions (sanitized here: see :func:`sanitize_boxes`, clamped to
            ``[0, max(1, target.max())]``).
        target: ``(N, 4)`` xyxy ground truth with positive area, same units (normalized or pixels).
    Returns:
        ``(N,)`` float32 IoU in [0, 1], on the inputs' device.
    Raises:
        ValueError: shapes differ or are not ``(N, 4)``.
    """
    pred, target = torch.as_tensor(pred, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32)
    if pred.shape != target.shape or pred.ndim != 2 or pred.shape[-1] != 4:
        raise ValueError(f"pred and target must both be (N, 4), got {tuple(pred.shape)} and {tuple(target.shape)}")
    pred = sanitize_boxes(pred, upper=target.amax().clamp_min(1.0) if len(target) else 1.0)
    sides = (torch.minimum(pred[:, 2:], target[:, 2:]) - torch.maximum(pred[:, :2], target[:, :2])).clamp_min(0)
    inter = sides.prod(dim=1)
    return inter / (box_area(pred) + box_area(target) - inter)


def accuracy_at(ious: torch.Tensor | np.ndarray, threshold: float = 0.5) -> float:
    """Share of images with IoU strictly greater than ``threshold`` (PASCAL VOC: 0.5)."""
    ious = np.asarray(ious, dtype=np.float64)
    return float((ious > threshold).mean()) if ious.size else float("nan")


def summarize(ious: torch.Tensor | np.ndarray) -> dict[str, float]:
    """``{"mean_iou", "acc_50", "acc_75", "acc_50_95", "n"}`` of per-image IoUs ``(N,)``."""
    ious = np.asarray(ious, dtype=np.float64)
    return {
        "mean_iou": float(ious.mean()) if ious.size else float("nan"),
        "acc_50": accuracy_at(ious, 0.5),
        "acc_75": accuracy_at(ious, 0.75),
        "acc_50_95": float(np.mean([accuracy_at(ious, t) for t in IOU_THRESHOLDS])),
        "n": int(ious.size),
    }


def bootstrap_interval(values, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """The ``confidence`` bootstrap interval of the mean of ``values`` ``(N,)`` (e.g. per-photo IoUs, or
    0/1 hits): :func:`scipy.stats.bootstrap` over resamples of the N values with replacement, seeded,
    percentile method (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13). Not scipy's
    default BCa: the percentile interval stays inside the values' range and is defined for one repeated
    value (every photo a hit), where BCa gives NaN. E.g. 50 zeros and 50 ones: about [0.40, 0.60].

    Returns:
        ``(low, high)``: ``(c, c)`` for a constant sample; ``(nan, nan)`` for fewer than 2 values, whose
        spread a resample cannot show (one photo's score is no estimate of its uncertainty).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size < 2:
        return float("nan"), float("nan")
    if values.min() == values.max():
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=confidence,
                             method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def score_intervals(ious: torch.Tensor | np.ndarray, seed: int = 0, confidence: float = CONFIDENCE,
                    resamples: int = RESAMPLES) -> dict[str, list[float]]:
    """Bootstrap intervals (:func:`bootstrap_interval`) of the scores of :func:`summarize`, from
    per-image IoUs ``(N,)``: ``{"mean_iou", "acc_50", "acc_75", "acc_50_95"}``, each ``[low, high]``
    (fractions, as the scores). Each score is the mean over photos of a per-photo value: the IoU, a hit
    (IoU > t), or the share of the thresholds 0.50:0.95 the IoU exceeds; all four are resampled with the
    same ``seed``, so they come from the same resampled photo sets."""
    ious = np.asarray(ious, dtype=np.float64).reshape(-1)
    per_photo = {"mean_iou": ious, "acc_50": ious > 0.5, "acc_75": ious > 0.75,
                 "acc_50_95": (ious[:, None] > np.asarray(IOU_THRESHOLDS)).mean(axis=1)}
    return {name: list(bootstrap_interval(values, confidence, resamples, seed)) for name, values in per_photo.items()}


def spearman(confidence, ious) -> float:
    """Spearman's rank correlation of per-image ``confidence`` ``(N,)`` with the ``ious`` ``(N,)``
    (:func:`scipy.stats.spearmanr`; ties get their mean rank): 1 when the more confident box is always
    the better one. NaN with fewer than 2 photos or a constant input.

    Raises:
        ValueError: the two have different lengths.
    """
    confidence, ious = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (confidence, ious))
    if confidence.shape != ious.shape:
        raise ValueError(f"{confidence.size} confidences for {ious.size} IoUs")
    if confidence.size < 2 or np.ptp(confidence) == 0 or np.ptp(ious) == 0:
        return float("nan")
    return float(stats.spearmanr(confidence, ious).statistic)


def covered(n: int, coverage: float) -> int:
    """How many of ``n`` photos a ``coverage`` in (0, 1] keeps: ``ceil(coverage n)`` (at least that share;
    rounded to 9 decimals first, so that 0.8 x 365 keeps 292, not 293), at least 1 when ``n`` > 0.

    Raises:
        ValueError: ``coverage`` outside (0, 1].
    """
    if not 0 < coverage <= 1:
        raise ValueError(f"a coverage is a share in (0, 1], got {coverage!r}")
    return min(n, max(1, math.ceil(round(coverage * n, 9)))) if n else 0


def risk_coverage(ious, confidence, coverages=COVERAGES) -> pd.DataFrame:
    """The risk-coverage table (Geifman & El-Yaniv, NeurIPS 2017): for each coverage, the
    :func:`covered` most confident photos and their scores.

    Args:
        ious: ``(N,)`` per-image IoU.
        confidence: ``(N,)`` per-image confidence, higher = trusted more (ties keep the photos' order).
        coverages: shares in (0, 1] of the photos to keep, most confident first.

    Returns:
        One row per coverage: ``coverage``, ``photos`` (kept), ``acc_50`` (share of the kept photos with
        IoU > 0.5, the PASCAL VOC criterion), ``mean_iou`` (of the kept photos), ``min_confidence``
        (the lowest confidence kept: photos below it are left out) and ``tied`` (a photo left out has that
        same lowest confidence: which of the tied photos are kept is their order, not the confidence).
        Shares in [0, 1]; NaN scores for ``N = 0``.

    Raises:
        ValueError: the two have different lengths, or a coverage outside (0, 1].
    """
    ious, confidence = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (ious, confidence))
    if confidence.shape != ious.shape:
        raise ValueError(f"{confidence.size} confidences for {ious.size} IoUs")
    order = np.argsort(-confidence, kind="stable")
    rows = []
    for coverage in coverages:
        kept = order[:covered(ious.size, coverage)]
        lowest = float(confidence[kept].min()) if kept.size else float("nan")
        rows.append({"coverage": float(coverage), "photos": int(kept.size), "acc_50": accuracy_at(ious[kept]),
                     "mean_iou": float(ious[kept].mean()) if kept.size else float("nan"), "min_confidence": lowest,
                     "tied": bool(0 < kept.size < ious.size and confidence[order[kept.size]] == lowest)})
    return pd.DataFrame(rows)


def confidence_summary(ious, confidence, coverages=COVERAGES) -> dict:
    """How well per-image ``confidence`` ``(N,)`` ranks the ``ious`` ``(N,)``, as a metrics JSON holds it:
    ``{"spearman": float, "risk_coverage": [row, ...]}`` (:func:`spearman`; the rows of
    :func:`risk_coverage` as dicts)."""
    return {"spearman": spearman(confidence, ious),
            "risk_coverage": risk_coverage(ious, confidence, coverages).to_dict("records")}
