"""Head geometry: where a head's outputs put a box. Expected positions of per-edge distributions
(:func:`soft_argmax`) and boxes from a cell's distances to its edges (:func:`cell_boxes`,
:func:`edge_distances`), all in normalized coordinates (:mod:`localizer.boxes`)."""

from __future__ import annotations

import torch


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Expected position of softmax distributions over bins spread evenly over [0, 1] (a normalized
    coordinate or distance; integral regression, Sun et al., "Integral Human Pose Regression", ECCV 2018).

    Args:
        logits: ``(..., K)`` with ``K >= 2`` bins at positions ``k / (K - 1)``, k = 0..K-1.

    Returns:
        ``(...)`` float32 expectations in [0, 1] (computed in float32 also under autocast).
    """
    positions = torch.linspace(0.0, 1.0, logits.shape[-1], device=logits.device)
    return (logits.float().softmax(dim=-1) * positions).sum(dim=-1)


def cell_boxes(distances: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Boxes ``(N, L, 4)``, normalized xyxy, from each cell's distances ``(N, L, 4)`` (left, top, right,
    bottom, normalized) to the edges and the cells' centres ``(L, 2)`` (x, y):
    ``(cx - l, cy - t, cx + r, cy + b)`` (FCOS, Tian et al., ICCV 2019, eq. 1). Not clamped: an edge
    past the image border keeps its gradient in a loss (clamp predictions to [0, 1])."""
    centres = centres.to(distances.dtype).repeat(1, 2)  # (L, 4): cx, cy, cx, cy
    signs = torch.tensor([-1.0, -1.0, 1.0, 1.0], device=distances.device)
    return centres + signs * distances


def edge_distances(centres: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Distances ``(N, L, 4)`` (left, top, right, bottom) from the cells' centres ``(L, 2)`` to the
    edges of normalized xyxy ``boxes``: ``(N, 4)``, one box per image for every cell, or ``(N, L, 4)``,
    a box per cell. The inverse of :func:`cell_boxes` (negative where a centre lies outside its box)."""
    boxes = boxes.float()
    if boxes.dim() == 2:
        boxes = boxes[:, None, :]
    cx, cy = centres[None, :, 0], centres[None, :, 1]
    return torch.stack([cx - boxes[..., 0], cy - boxes[..., 1], boxes[..., 2] - cx, boxes[..., 3] - cy], dim=-1)
