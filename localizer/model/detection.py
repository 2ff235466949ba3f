"""Which animals the ``largest`` head's cells detect and which of them it predicts
(:class:`localizer.model.heads.LargestHead`): every cell scoring at least :data:`ANIMAL_SCORE` detects
an animal, the detections of one animal are merged by non-maximum suppression, and the largest one is
the prediction (:func:`choose_largest`; :func:`largest_cell` says which cell's box it is).
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, box_area

#: :class:`~localizer.model.heads.LargestHead`: a cell whose animal score (a probability) is at least this
#: detects an animal ...
ANIMAL_SCORE = 0.5
#: ... the detections of one animal are merged by non-maximum suppression at this IoU (a box overlapping a
#: better-scored one by more is dropped; a low value can drop the whole animal's larger box in favour of a
#: better-scored part of it; Ultralytics YOLO's default too). Chosen on validation: docs/ablations.md, row 24.
ANIMAL_NMS_IOU = 0.7


def _detections(cell_boxes: torch.Tensor, cell_scores: torch.Tensor, score: float, nms_iou: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(boxes (D, 4), image (D,), cell (D,))``: every detection of the batch (see :func:`detect_animals`)
    and the cell it comes from, best scored first over the whole batch (so also within each image); one
    :func:`torchvision.ops.batched_nms` per batch."""
    probs = cell_scores.detach().float().sigmoid()
    image, cell = (probs >= score).nonzero(as_tuple=True)
    boxes, probs = cell_boxes.detach().float()[image, cell], probs[image, cell]
    keep = batched_nms(boxes, probs, image, nms_iou)  # best scored first, over the whole batch
    return boxes[keep], image[keep], cell[keep]


def detect_animals(cell_boxes: torch.Tensor, cell_scores: torch.Tensor, score: float = ANIMAL_SCORE,
                   nms_iou: float = ANIMAL_NMS_IOU) -> list[torch.Tensor]:
    """The animals each photo's cells detect: per image, the boxes ``(D, 4)`` (normalized xyxy, best
    scored first) of the cells whose sigmoid score is >= ``score``, after non-maximum suppression at
    ``nms_iou`` within the image (:func:`torchvision.ops.batched_nms`). From ``cell_boxes`` ``(N, L, 4)``
    and ``cell_scores`` ``(N, L)`` (logits)."""
    boxes, image, _ = _detections(cell_boxes, cell_scores, score, nms_iou)
    order = torch.sort(image, stable=True).indices  # grouped by image, best scored first within each
    boxes, image = boxes[order], image[order]
    return list(boxes.split(torch.bincount(image, minlength=len(cell_scores)).tolist()))


def largest_cell(box: torch.Tensor, cell_boxes: torch.Tensor, cell_scores: torch.Tensor,
                 score: float = ANIMAL_SCORE, nms_iou: float = ANIMAL_NMS_IOU) -> torch.Tensor:
    """``(N,)`` long: per photo, the cell (index into ``L``) whose box :func:`choose_largest` predicts, the
    largest (by area; ties: the best scored) of the animals :func:`detect_animals` finds (the largest
    detection is the prediction wherever there is one: docs/ablations.md, row 21); -1 for a photo with no
    detection, where the soft-argmax ``box`` ``(N, 4)`` is kept. ``cell_boxes`` ``(N, L, 4)``,
    ``cell_scores`` ``(N, L)`` logits."""
    found, image, cells = _detections(cell_boxes, cell_scores, score, nms_iou)
    # Sizes from shapes and cumsum, not len() or arange(len()): an ONNX export (localizer.engine.export) traces
    # this function, and a Python number taken from a data-dependent size would be fixed in its graph.
    n, area = box.shape[0], box_area(found)
    most = area.new_full((n,), -1.0).scatter_reduce(0, image, area, "amax")
    index, none = torch.ones_like(image).cumsum(0) - 1, torch.iinfo(image.dtype).max  # (D,): 0 .. D - 1
    candidates = torch.where(area == most[image], index, none)  # the first is the best scored of the largest
    first = candidates.new_full((n,), none).scatter_reduce(0, image, candidates, "amin")  # (N,): index or none
    # cells[first] where an image has a detection, else -1: a gather from the cells behind a -1, never an indexed
    # write, which an ONNX graph traced on a batch with detections cannot replay on one without
    return torch.cat((cells.new_full((1,), -1), cells))[torch.where(first < none, first, -1) + 1]


def take_cells(values: torch.Tensor, cell_values: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """``values`` ``(N, ...)`` with row ``i`` replaced by ``cell_values[i, cell[i]]`` (``cell_values``
    ``(N, L, ...)``, detached) where ``cell[i]`` >= 0 (:func:`largest_cell`); gradients flow through
    ``values`` only."""
    extra = (1,) * (cell_values.dim() - 2)  # the dimensions after (N, L)
    index = cell.clamp_min(0).view(-1, 1, *extra).expand(-1, 1, *cell_values.shape[2:])
    picked = cell_values.detach().gather(1, index).squeeze(1).to(values.dtype)  # (N, ...): cell_values[i, cell[i]]
    return torch.where((cell >= 0).view(-1, *extra), picked, values)


def choose_largest(box: torch.Tensor, cell_boxes: torch.Tensor, cell_scores: torch.Tensor,
                   score: float = ANIMAL_SCORE, nms_iou: float = ANIMAL_NMS_IOU) -> torch.Tensor:
    """:class:`~localizer.model.heads.LargestHead`'s prediction ``(N, 4)``: the box of the cell
    :func:`largest_cell` chooses, the largest detected animal, or the soft-argmax ``box`` ``(N, 4)`` where
    it chooses none. (Gradients flow through ``box`` only.)"""
    return take_cells(box, cell_boxes.float(), largest_cell(box, cell_boxes, cell_scores, score, nms_iou))
