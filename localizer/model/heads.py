"""Box heads: from the backbone's feature map ``(N, F, h, w)`` to one normalized xyxy box ``(N, 4)``.

* ``linear`` — the course report's head: global average pooling, Dropout(p), Linear(F, 4). Pooling
  throws away *where* the features are; the linear layer must read the box off what survives.
* ``softargmax`` — a head that keeps where things are: a 1x1 convolution reduces the map to
  :data:`REDUCED_CHANNELS` channels (+ BatchNorm + ReLU), which are flattened with their positions
  (as fastai's VOC largest-object lesson flattens the map instead of pooling it), then Dropout(p)
  and a linear layer give, for each of the four edges, logits over :data:`BINS` positions spread
  evenly over [0, 1]. Each edge is the expectation of its softmax distribution (a soft-argmax:
  integral regression, Sun et al., "Integral Human Pose Regression", ECCV 2018; per-edge
  distributions as in Li et al., "Generalized Focal Loss", NeurIPS 2020, and 1-D coordinate
  classification as in SimCC, Li et al., ECCV 2022). The result always lies in [0, 1], and a
  one-hot distribution at bin ``k`` gives exactly ``k / (BINS - 1)``, so edges on the image border
  (frequent with tight framing) are reachable.
* ``largest`` — detect every animal, predict the largest: a per-location head as ``dense`` (FCOS-style)
  is trained on *every* annotated animal (each cell scores, with a sigmoid, whether an animal's centre
  is near it, and predicts that animal's box), and the prediction is the largest box it detects
  (:func:`choose_largest`): the ground truth is the largest animal, and on a photo with several a head
  that regresses one box can put it between them or around the group. Beside it, a ``softargmax``
  head is trained on the primary box; its box is the prediction where no cell detects an animal.
* ``dense`` — a per-location head, as one-stage detectors are (FCOS, Tian et al., ICCV 2019; with
  GFL's per-edge distributions): every cell of the ``h x w`` map predicts the distances from its
  centre to the four edges (each a soft-argmax over :data:`BINS` positions in [0, 1]) and a score;
  the box is the best-scored cell's. Picking one cell instead of reading the box off the whole map
  lets a photo with several animals get the box of one of them rather than one between them: the
  scores are a softmax over the cells, trained towards the cells near the primary box's centre
  (:func:`localizer.model.losses.dense_loss`).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import box_area, box_iou, nms

from localizer.metrics import sanitize_boxes

HEADS = ("linear", "softargmax", "dense", "largest")
#: Heads trained on every annotated animal of a photo, not only the primary one (their run's manifest
#: keeps every box: :data:`localizer.boxes.ALL_BOXES_COLUMN`).
ALL_BOXES_HEADS = ("largest",)
#: Boxes per photo that a head of :data:`ALL_BOXES_HEADS` is trained on (the largest ones; a lion photo has
#: at most 15, 99.7 % of them at most 7).
MAX_BOXES = 8
REDUCED_CHANNELS = 64
BINS = 32
#: :class:`LargestHead`: a cell whose animal score (a probability) is at least this detects an animal ...
ANIMAL_SCORE = 0.5
#: ... the detections of one animal are merged by non-maximum suppression at this IoU (a box overlapping a
#: better-scored one by more is dropped; a low value can drop the whole animal's larger box in favour of a
#: better-scored part of it). Chosen on the lion validation split (README, ablation 24;
#: ``benchmarks/largest_rule.py``): 0.7 (also Ultralytics YOLO's default) scored 97.25 % accuracy at
#: IoU > 0.5 and 88.03 % mean IoU, against 96.70 / 87.94 % for 0.5; 0.8 to 1 (no suppression) scored 97.25 to
#: 97.53 % but a lower mean IoU ...
ANIMAL_NMS_IOU = 0.7
#: ... and the soft-argmax box is kept where it overlaps the largest detection with IoU > this; 1: never, the
#: largest detection is the prediction wherever there is one. Chosen with :data:`ANIMAL_SCORE` on the lion
#: validation split (README, ablation 21; ``benchmarks/largest_rule.py``): 1 scored 96.70 % accuracy at
#: IoU > 0.5 against 96.15 % for 0.5 and 95.05 % for the soft-argmax box alone (with suppression at IoU 0.5,
#: as then; at 0.7: 97.25 % against 96.70 % for 0.5 and 96.98 % for 0.7).
LARGEST_AGREEMENT = 1.0


class LinearHead(nn.Sequential):
    """The report's head: ``(N, F, h, w)`` -> global average pool -> Dropout(p) -> Linear(F, 4).

    An ``nn.Sequential(Dropout, Linear)`` (``head[0]``, ``head[1]``; state-dict keys ``0.*``, ``1.*``)
    whose forward pools first. The output is the raw linear output: it can leave [0, 1].
    """

    def __init__(self, num_features: int, dropout: float = 0.5):
        super().__init__(nn.Dropout(p=float(dropout)), nn.Linear(int(num_features), 4))

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return super().forward(feature_map.mean(dim=(2, 3)))


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Expected position of softmax distributions over bins spread evenly over [0, 1].

    Args:
        logits: ``(..., K)`` with ``K >= 2`` bins at positions ``k / (K - 1)``, k = 0..K-1.

    Returns:
        ``(...)`` float32 expectations in [0, 1] (computed in float32 also under autocast).
    """
    positions = torch.linspace(0.0, 1.0, logits.shape[-1], device=logits.device)
    return (logits.float().softmax(dim=-1) * positions).sum(dim=-1)


class SoftArgmaxHead(nn.Module):
    """A head on the un-pooled map: ``(N, F, h, w)`` -> 1x1 conv to ``channels`` (+ BN + ReLU) ->
    flatten -> Dropout(p) -> Linear(channels h w, 4 bins) -> per-edge :func:`soft_argmax` -> ``(N, 4)``
    normalized xyxy in [0, 1].

    With ``hypotheses`` M > 1 the linear layer gives M boxes and a second one M scores, and the box
    is the best-scored hypothesis (multiple hypotheses: where a photo has several animals of about
    the same size, one hypothesis can box each instead of one box falling between them; trained
    with :func:`localizer.model.losses.hypotheses_loss`).

    Args:
        num_features: ``F``, channels of the backbone's map.
        grid: ``(h, w)`` of the map for the training input size (its input must keep that size).
        dropout: dropout before the linear layer.
        hypotheses: M >= 1, boxes per image.
        channels, bins: see :data:`REDUCED_CHANNELS` and :data:`BINS`.
    """

    def __init__(self, num_features: int, grid: tuple[int, int], dropout: float = 0.5, hypotheses: int = 1,
                 channels: int = REDUCED_CHANNELS, bins: int = BINS):
        super().__init__()
        self.grid, self.bins, self.hypotheses = tuple(grid), int(bins), int(hypotheses)
        self.reduce = nn.Sequential(nn.Conv2d(num_features, channels, 1, bias=False), nn.BatchNorm2d(channels),
                                    nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(p=float(dropout))
        flat = channels * self.grid[0] * self.grid[1]
        self.edges = nn.Linear(flat, self.hypotheses * 4 * self.bins)
        self.scores = nn.Linear(flat, self.hypotheses) if self.hypotheses > 1 else None

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        logits, scores = self.outputs(feature_map)
        return pick_hypothesis(soft_argmax(logits), scores)

    def outputs(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The per-edge logits ``(N, M, 4, bins)`` (xmin, ymin, xmax, ymax of each hypothesis) and the
        hypotheses' scores ``(N, M)`` (None when M = 1).

        Raises:
            ValueError: a feature map of another size than ``grid``.
        """
        if tuple(feature_map.shape[-2:]) != self.grid:
            raise ValueError(f"the softargmax head was built for a {self.grid} feature map (its training input "
                             f"size) and got {tuple(feature_map.shape[-2:])}")
        flat = self.dropout(self.reduce(feature_map).flatten(1))
        logits = self.edges(flat).view(-1, self.hypotheses, 4, self.bins)
        return logits, (self.scores(flat) if self.scores is not None else None)


def pick_hypothesis(boxes: torch.Tensor, scores: torch.Tensor | None) -> torch.Tensor:
    """The best-scored box ``(N, 4)`` of ``boxes`` ``(N, M, 4)`` (the only one when ``scores`` is None)."""
    if scores is None:
        return boxes[:, 0]
    return boxes[torch.arange(boxes.shape[0], device=boxes.device), scores.argmax(dim=1)]


class DenseHead(nn.Module):
    """A per-location head on the un-pooled map ``(N, F, h, w)``: 1x1 conv to ``channels`` + BN + ReLU,
    3x3 conv + BN + ReLU (each cell sees its neighbours), Dropout(p), then per cell a 1x1 conv to the
    logits of its four distances (left, top, right, bottom; :data:`BINS` positions each, over [0, 1]
    of the image side) and a 1x1 conv to its score. Cell ``(i, j)`` has its centre at
    ``((j + 0.5) / w, (i + 0.5) / h)``; its box is ``(cx - l, cy - t, cx + r, cy + b)`` clamped to [0, 1]
    (distances as in FCOS, Tian et al., ICCV 2019, eq. 1). ``forward`` gives the best-scored cell's
    box, ``(N, 4)`` normalized xyxy.

    Args:
        num_features: ``F``, channels of the backbone's map.
        grid: ``(h, w)`` of the map for the training input size (its input must keep that size).
        dropout: dropout before the per-cell outputs.
        channels, bins: see :data:`REDUCED_CHANNELS` and :data:`BINS`.
    """

    hypotheses = 1

    def __init__(self, num_features: int, grid: tuple[int, int], dropout: float = 0.5,
                 channels: int = 2 * REDUCED_CHANNELS, bins: int = BINS):
        super().__init__()
        self.grid, self.bins = tuple(grid), int(bins)
        self.tower = nn.Sequential(
            nn.Conv2d(num_features, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Dropout(p=float(dropout)))
        self.distances = nn.Conv2d(channels, 4 * self.bins, 1)
        self.scores = nn.Conv2d(channels, 1, 1)
        h, w = self.grid
        cy, cx = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
        self.register_buffer("centres", torch.stack([cx.flatten(), cy.flatten()], dim=1), persistent=False)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        logits, scores = self.outputs(feature_map)
        return pick_hypothesis(self.boxes(logits), scores)

    def outputs(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-cell distance logits ``(N, L, 4, bins)`` (left, top, right, bottom) and scores
        ``(N, L)``, with ``L = h w`` cells in row-major order.

        Raises:
            ValueError: a feature map of another size than ``grid``.
        """
        if tuple(feature_map.shape[-2:]) != self.grid:
            raise ValueError(f"the dense head was built for a {self.grid} feature map (its training input "
                             f"size) and got {tuple(feature_map.shape[-2:])}")
        features = self.tower(feature_map)
        n = features.shape[0]
        logits = self.distances(features).flatten(2).transpose(1, 2).reshape(n, -1, 4, self.bins)
        return logits, self.scores(features).flatten(1)

    def boxes(self, logits: torch.Tensor) -> torch.Tensor:
        """Every cell's box ``(N, L, 4)``, normalized xyxy clamped to [0, 1], from the distance logits
        ``(N, L, 4, bins)`` of :meth:`outputs` (:func:`cell_boxes`)."""
        return cell_boxes(soft_argmax(logits), self.centres).clamp(0, 1)


class LargestHead(nn.Module):
    """The largest detected animal (see the module docstring): a :class:`DenseHead` (``animals``,
    trained on every box with a sigmoid score per cell: :func:`localizer.model.losses.animals_loss`) and a
    :class:`SoftArgmaxHead` (``box``, trained on the primary box, the fallback) on the same map.
    ``forward`` gives ``(N, 4)`` normalized xyxy (:func:`choose_largest`).

    Args:
        num_features: ``F``, channels of the backbone's map.
        grid: ``(h, w)`` of the map for the training input size (its input must keep that size).
        dropout: dropout of both parts.
    """

    hypotheses = 1

    def __init__(self, num_features: int, grid: tuple[int, int], dropout: float = 0.5):
        super().__init__()
        self.grid = tuple(grid)
        self.box = SoftArgmaxHead(num_features, grid, dropout)
        self.animals = DenseHead(num_features, grid, dropout)

    def outputs(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(box logits (N, 4, bins), cell distance logits (N, L, 4, bins), cell scores (N, L))``: the
        soft-argmax part's per-edge logits and the dense part's outputs (:meth:`DenseHead.outputs`).

        Raises:
            ValueError: a feature map of another size than ``grid``.
        """
        box_logits, _ = self.box.outputs(feature_map)
        cell_logits, cell_scores = self.animals.outputs(feature_map)
        return box_logits[:, 0], cell_logits, cell_scores

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        box_logits, cell_logits, cell_scores = self.outputs(feature_map)
        return choose_largest(soft_argmax(box_logits), self.animals.boxes(cell_logits), cell_scores)


def detect_animals(cell_boxes: torch.Tensor, cell_scores: torch.Tensor, score: float = ANIMAL_SCORE,
                   nms_iou: float = ANIMAL_NMS_IOU) -> list[torch.Tensor]:
    """The animals one photo's cells detect: per image, the boxes ``(D, 4)`` (normalized xyxy, best
    scored first) of the cells whose sigmoid score is >= ``score``, after non-maximum suppression at
    ``nms_iou`` (:func:`torchvision.ops.nms`). From ``cell_boxes`` ``(N, L, 4)`` and ``cell_scores``
    ``(N, L)`` (logits)."""
    probs = cell_scores.detach().float().sigmoid()
    found = []
    for boxes, p in zip(cell_boxes.detach().float(), probs):
        keep = p >= score
        boxes, p = boxes[keep], p[keep]
        found.append(boxes[nms(boxes, p, nms_iou)])
    return found


def choose_largest(box: torch.Tensor, cell_boxes: torch.Tensor, cell_scores: torch.Tensor,
                   score: float = ANIMAL_SCORE, nms_iou: float = ANIMAL_NMS_IOU,
                   agreement: float = LARGEST_AGREEMENT) -> torch.Tensor:
    """:class:`LargestHead`'s prediction ``(N, 4)``: the largest (by area) of the animals
    :func:`detect_animals` finds, except where it overlaps the soft-argmax ``box`` ``(N, 4)`` with IoU >
    ``agreement`` (never with the default 1: see :data:`LARGEST_AGREEMENT`); a photo with no detection
    keeps ``box``. (Gradients flow through ``box`` only.)"""
    out = box.clone()
    for i, found in enumerate(detect_animals(cell_boxes, cell_scores, score, nms_iou)):
        if len(found):
            largest = found[box_area(found).argmax()]
            if box_iou(sanitize_boxes(box[i:i + 1].detach().float()), largest[None])[0, 0] <= agreement:
                out[i] = largest.to(out.dtype)
    return out


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


def build_head(name: str, num_features: int, grid: tuple[int, int], dropout: float, hypotheses: int = 1
               ) -> nn.Module:
    """The head ``name`` (one of :data:`HEADS`) for a ``num_features``-channel map of size ``grid``
    (``hypotheses``: boxes per image of the ``softargmax`` head).

    Raises:
        ValueError: an unknown head, or ``hypotheses`` > 1 for a head other than ``softargmax``.
    """
    if name == "linear":
        if hypotheses != 1:
            raise ValueError("the linear head gives one box; hypotheses > 1 needs the softargmax head")
        return LinearHead(num_features, dropout)
    if name == "softargmax":
        return SoftArgmaxHead(num_features, grid, dropout, hypotheses)
    if name == "dense":
        if hypotheses != 1:
            raise ValueError("the dense head picks one of its cells' boxes; hypotheses > 1 needs the softargmax head")
        return DenseHead(num_features, grid, dropout)
    if name == "largest":
        if hypotheses != 1:
            raise ValueError("the largest head gives one box; hypotheses > 1 needs the softargmax head")
        return LargestHead(num_features, grid, dropout)
    raise ValueError(f"unknown head {name!r}; expected one of {HEADS}")
