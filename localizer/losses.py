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
