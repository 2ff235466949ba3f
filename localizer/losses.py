"""Box regression losses on normalized xyxy boxes.

* ``smooth_l1`` — the course report's loss: :func:`torch.nn.functional.smooth_l1_loss` (Girshick,
  Fast R-CNN, 2015; PyTorch default beta = 1), mean over the 4 coordinates and the batch.
* ``giou`` — ``2 * GIoU loss + 5 * L1``, the weights of DETR (Carion et al., 2020), with
  :func:`torchvision.ops.generalized_box_iou_loss` (Rezatofighi et al., CVPR 2019). The GIoU term
  scores the overlap directly and still has a gradient for disjoint boxes; predictions are
  sanitized (coordinates ordered) before it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss

from .metrics import sanitize_boxes

LOSSES = ("smooth_l1", "giou")
GIOU_WEIGHT, L1_WEIGHT = 2.0, 5.0


def box_loss(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Scalar loss of predictions ``(N, 4)`` against targets ``(N, 4)``, normalized xyxy.

    Raises:
        ValueError: unknown loss ``name`` (see :data:`LOSSES`).
    """
    pred, target = pred.float(), target.float()
    if name == "smooth_l1":
        return F.smooth_l1_loss(pred, target)
    if name == "giou":
        giou = generalized_box_iou_loss(sanitize_boxes(pred, upper=float("inf")), target, reduction="mean")
        return GIOU_WEIGHT * giou + L1_WEIGHT * F.l1_loss(pred, target)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss of per-edge logits against continuous edge positions (Li et al.,
    "Generalized Focal Loss", NeurIPS 2020, eq. 6): the cross-entropy towards the two bins around
    each target, weighted by their nearness, so the distribution concentrates where the edge is
    (its soft-argmax alone is indifferent to how the mass is spread).

    Args:
        logits: ``(N, 4, K)`` logits over ``K >= 2`` bins at positions ``k / (K - 1)``
            (:class:`localizer.heads.SoftArgmaxHead`).
        target: ``(N, 4)`` normalized xyxy boxes; clamped to [0, 1].

    Returns:
        Scalar mean over the ``4 N`` edges. Its minimum, ``-(w log w + (1 - w) log(1 - w))`` for a
        target between two bins at weight ``w``, is 0 exactly on a bin.
    """
    bins = logits.shape[-1]
    position = target.float().clamp(0, 1) * (bins - 1)
    left = position.floor().long().clamp(max=bins - 2)
    right_weight = position - left
    log_p = logits.float().log_softmax(dim=-1)
    nll_left = -log_p.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    nll_right = -log_p.gather(-1, (left + 1).unsqueeze(-1)).squeeze(-1)
    return ((1 - right_weight) * nll_left + right_weight * nll_right).mean()
