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

from localizer.boxes import empty_boxes
from localizer.model.geometry import cell_boxes, edge_distances, soft_argmax
from localizer.metrics import sanitize_boxes
from localizer.recipe import LOSSES

__all__ = ["GIOU_WEIGHT", "L1_WEIGHT", "LOSSES", "animal_quality", "animals_loss", "box_loss", "centerness",
           "distribution_focal_loss", "nearest_cells", "soft_argmax_loss"]
GIOU_WEIGHT, L1_WEIGHT = 2.0, 5.0


def box_loss(name: str, pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Loss of predictions ``(N, 4)`` against targets ``(N, 4)``, normalized xyxy: a scalar, the
    mean over the batch (``reduction="mean"``), or ``(N,)`` per image (``"none"``).

    Raises:
        ValueError: unknown loss ``name`` (see :data:`LOSSES`).
    """
    pred, target = pred.float(), target.float()
    each = "none" if reduction == "none" else "mean"
    if name == "smooth_l1":
        loss = F.smooth_l1_loss(pred, target, reduction=each)
        return loss.mean(dim=-1) if reduction == "none" else loss
    if name == "giou":
        giou = generalized_box_iou_loss(sanitize_boxes(pred, upper=float("inf")), target, reduction=each)
        l1 = F.l1_loss(pred, target, reduction=each)
        return GIOU_WEIGHT * giou + L1_WEIGHT * (l1.mean(dim=-1) if reduction == "none" else l1)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


def soft_argmax_loss(name: str, logits: torch.Tensor, target: torch.Tensor, dfl: float = 0.0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of a soft-argmax box: :func:`box_loss` ``name`` of the per-edge expectations of ``logits``
    ``(N, 4, K)`` against ``target`` ``(N, 4)`` normalized xyxy, plus ``dfl`` times
    :func:`distribution_focal_loss` of the logits (0: none). Returns ``(scalar loss, (N, 4) boxes)``."""
    box = soft_argmax(logits)
    loss = box_loss(name, box, target)
    if dfl:
        loss = loss + dfl * distribution_focal_loss(logits, target)
    return loss, box


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Distribution focal loss of per-edge logits against continuous edge positions (Li et al.,
    "Generalized Focal Loss", NeurIPS 2020, eq. 6): the cross-entropy towards the two bins around
    each target, weighted by their nearness, so the distribution concentrates where the edge is
    (its soft-argmax alone is indifferent to how the mass is spread).

    Args:
        logits: ``(N, 4, K)`` logits over ``K >= 2`` bins at positions ``k / (K - 1)``
            (:class:`localizer.model.heads.SoftArgmaxHead`).
        target: ``(N, 4)`` normalized xyxy boxes (or any positions over the same [0, 1], such as the
            per-cell distances of :class:`localizer.model.heads.DenseHead`); clamped to [0, 1].

    Returns:
        Scalar mean over the ``4 N`` edges, or ``(N,)`` per image (``reduction="none"``). Its
        minimum, ``-(w log w + (1 - w) log(1 - w))`` for a target between two bins at weight ``w``,
        is 0 exactly on a bin.
    """
    bins = logits.shape[-1]
    position = target.float().clamp(0, 1) * (bins - 1)
    left = position.floor().long().clamp(max=bins - 2)
    right_weight = position - left
    log_p = logits.float().log_softmax(dim=-1)
    nll_left = -log_p.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    nll_right = -log_p.gather(-1, (left + 1).unsqueeze(-1)).squeeze(-1)
    per_edge = (1 - right_weight) * nll_left + right_weight * nll_right
    return per_edge.mean(dim=-1) if reduction == "none" else per_edge.mean()


def centerness(centres: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """FCOS's centerness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of each cell centre
    ``(L, 2)`` for each normalized xyxy box ``(N, 4)``: ``(N, L)`` float32 in [0, 1], 1 at the box's
    centre, 0 for centres outside the box (Tian et al., "FCOS", ICCV 2019, eq. 3)."""
    d = edge_distances(centres, target)  # (N, L, 4): l, t, r, b
    l, t, r, b = d.unbind(-1)
    inside = d.amin(dim=-1) > 0
    tiny = torch.finfo(torch.float32).tiny
    ratio = (torch.minimum(l, r) / torch.maximum(l, r).clamp_min(tiny)
             * torch.minimum(t, b) / torch.maximum(t, b).clamp_min(tiny))
    return torch.where(inside, ratio.clamp_min(0).sqrt(), torch.zeros_like(ratio))


def nearest_cells(centres: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """For each normalized xyxy box ``(N, 4)``, the index ``(N,)`` of the cell whose centre ``(L, 2)`` is
    nearest the box's centre."""
    box_centre = (target[:, :2] + target[:, 2:]).float()[:, None, :] / 2
    return ((centres[None] - box_centre) ** 2).sum(-1).argmin(dim=1)


def animal_quality(centres: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which animal each cell answers for, and how well: for cell centres ``(L, 2)`` and every animal's
    normalized xyxy box ``(N, B, 4)`` (rows of zeros: padding), ``(quality, animal)``, both ``(N, L)``:
    ``animal`` is the index of the box that gives the cell's centre the highest :func:`centerness`, and
    ``quality`` that centerness (float32 in [0, 1]; 0 for a cell in no box). The cell nearest each box's
    centre has quality 1 for it, so every animal has a cell even when no cell centre lies in its box."""
    n, cells = targets.shape[0], centres.shape[0]
    valid = ~empty_boxes(targets)  # (N, B)
    flat = targets.float().flatten(0, 1)
    quality = centerness(centres, flat)  # (N B, L)
    quality[torch.arange(len(flat), device=flat.device), nearest_cells(centres, flat)] = 1.0
    return (quality.view(n, -1, cells) * valid[..., None]).max(dim=1)


def animals_loss(name: str, logits: torch.Tensor, scores: torch.Tensor, centres: torch.Tensor, targets: torch.Tensor,
                 dfl: float = 0.0) -> torch.Tensor:
    """Loss of the dense part of :class:`localizer.model.heads.LargestHead`, trained on every annotated animal
    (FCOS, Tian et al., ICCV 2019, with GFL's soft quality targets, Li et al., NeurIPS 2020):

    * each cell answers for one animal with a quality ``q`` (:func:`animal_quality`: the highest
      :func:`centerness` of its centre over the boxes, 1 for the cell nearest each box's centre);
    * scores: binary cross-entropy of each cell's sigmoid score towards ``q`` (0 on the background),
      summed over the cells and divided by the sum of ``q`` (FCOS normalizes by the positives);
    * boxes: the box loss (plus ``dfl`` times the distribution focal loss of the distances) of each
      cell's box against its animal's box, weighted by ``q`` normalized to sum 1 per image.

    Args:
        name: the box loss (see :data:`LOSSES`).
        logits: ``(N, L, 4, K)`` per-cell distance logits (left, top, right, bottom).
        scores: ``(N, L)`` the cells' scores (logits).
        centres: ``(L, 2)`` the cells' centres (x, y), normalized.
        targets: ``(N, B, 4)`` normalized xyxy boxes of each photo's animals, the primary box first; rows
            of zeros (empty boxes) are padding. Each photo has at least one box.
        dfl: weight of the distribution focal loss.

    Returns:
        The scalar loss.
    """
    n, cells = scores.shape
    targets = targets.float()
    quality, animal = animal_quality(centres, targets)
    assigned = targets.gather(1, animal[..., None].expand(-1, -1, 4))  # (N, L, 4): each cell's animal
    boxes = cell_boxes(soft_argmax(logits), centres)
    per = box_loss(name, boxes.flatten(0, 1), assigned.flatten(0, 1), reduction="none")
    if dfl:
        distances = edge_distances(centres, assigned).flatten(0, 1)
        per = per + dfl * distribution_focal_loss(logits.flatten(0, 1), distances, reduction="none")
    weights = quality / quality.sum(dim=1, keepdim=True)
    box_term = (weights * per.view(n, cells)).sum(dim=1).mean()
    score_term = F.binary_cross_entropy_with_logits(scores.float(), quality, reduction="sum") / quality.sum()
    return box_term + score_term
