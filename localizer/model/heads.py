"""Box heads: from the backbone's feature map ``(N, F, h, w)`` to one normalized xyxy box ``(N, 4)``.

Every head has one interface, as torchvision's detection models own their losses: ``head(feature_map)``
gives the boxes ``(N, 4)`` and ``head.loss(feature_map, targets)`` gives ``(scalar loss, boxes (N, 4))``
(the boxes as the head predicts them, for the epoch's IoU), where ``targets`` are ``(N, B, 4)``
normalized xyxy boxes, the primary box first and rows of zeros as padding
(:func:`localizer.engine.datasets.box_targets`). The box loss (``loss``, one of
:data:`localizer.recipe.LOSSES`) and the distribution focal loss's weight (``dfl``) are given to a head
when it is built (:func:`build_head`, from the recipe).

* ``linear`` — the course report's head: global average pooling, Dropout(p), Linear(F, 4). Pooling
  throws away *where* the features are; the linear layer must read the box off what survives.
* ``softargmax`` — a head that keeps where things are: a 1x1 convolution reduces the map to
  :data:`REDUCED_CHANNELS` channels (+ BatchNorm + ReLU), which are flattened with their positions
  (as fastai's VOC largest-object lesson flattens the map instead of pooling it), then Dropout(p)
  and a linear layer give, for each of the four edges, logits over :data:`BINS` positions spread
  evenly over [0, 1]. Each edge is the expectation of its softmax distribution (a soft-argmax:
  :func:`localizer.boxes.soft_argmax`; per-edge distributions as in Li et al., "Generalized Focal
  Loss", NeurIPS 2020, and 1-D coordinate classification as in SimCC, Li et al., ECCV 2022). The
  result always lies in [0, 1], and a one-hot distribution at bin ``k`` gives exactly ``k / (BINS - 1)``,
  so edges on the image border (frequent with tight framing) are reachable.
* ``largest`` — detect every animal, predict the largest: a per-location part (:class:`DenseHead`,
  FCOS-style: Tian et al., ICCV 2019) is trained on *every* annotated animal (each cell scores, with a
  sigmoid, whether an animal's centre is near it, and predicts that animal's box), and the prediction
  is the largest box it detects (:func:`choose_largest`): the ground truth is the largest animal, and
  on a photo with several a head that regresses one box can put it between them or around the group.
  Beside it, a ``softargmax`` head is trained on the primary box; its box is the prediction where no
  cell detects an animal.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import batched_nms, box_area, box_iou

from localizer.boxes import cell_boxes, soft_argmax
from localizer.metrics import sanitize_boxes
from localizer.model.losses import animals_loss, box_loss, soft_argmax_loss
from localizer.recipe import HEADS

__all__ = ["BINS", "HEADS", "REDUCED_CHANNELS", "DenseHead", "LargestHead", "LinearHead", "SoftArgmaxHead",
           "build_head", "choose_largest", "detect_animals", "soft_argmax"]

REDUCED_CHANNELS = 64
BINS = 32
#: :class:`LargestHead`: a cell whose animal score (a probability) is at least this detects an animal ...
ANIMAL_SCORE = 0.5
#: ... the detections of one animal are merged by non-maximum suppression at this IoU (a box overlapping a
#: better-scored one by more is dropped; a low value can drop the whole animal's larger box in favour of a
#: better-scored part of it). Chosen on the lion validation split (README, ablation 24;
#: ``experiments/largest_rule.py``): 0.7 (also Ultralytics YOLO's default) scored 97.25 % accuracy at
#: IoU > 0.5 and 88.03 % mean IoU, against 96.70 / 87.94 % for 0.5; 0.8 to 1 (no suppression) scored 97.25 to
#: 97.53 % but a lower mean IoU ...
ANIMAL_NMS_IOU = 0.7
#: ... and the soft-argmax box is kept where it overlaps the largest detection with IoU > this; 1: never, the
#: largest detection is the prediction wherever there is one. Chosen with :data:`ANIMAL_SCORE` on the lion
#: validation split (README, ablation 21; ``experiments/largest_rule.py``): 1 scored 96.70 % accuracy at
#: IoU > 0.5 against 96.15 % for 0.5 and 95.05 % for the soft-argmax box alone (with suppression at IoU 0.5,
#: as then; at 0.7: 97.25 % against 96.70 % for 0.5 and 96.98 % for 0.7).
LARGEST_AGREEMENT = 1.0


class LinearHead(nn.Sequential):
    """The report's head: ``(N, F, h, w)`` -> global average pool -> Dropout(p) -> Linear(F, 4).

    An ``nn.Sequential(Dropout, Linear)`` (``head[0]``, ``head[1]``; state-dict keys ``0.*``, ``1.*``)
    whose forward pools first. The output is the raw linear output: it can leave [0, 1]. Its loss is
    :func:`localizer.model.losses.box_loss` ``loss`` against the primary box.
    """

    def __init__(self, num_features: int, dropout: float = 0.5, loss: str = "smooth_l1"):
        super().__init__(nn.Dropout(p=float(dropout)), nn.Linear(int(num_features), 4))
        self.loss_name = loss

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return super().forward(feature_map.mean(dim=(2, 3)))

    def loss(self, feature_map: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scalar loss, boxes (N, 4))`` for ``targets`` ``(N, B, 4)`` (see the module docstring)."""
        boxes = self(feature_map)
        return box_loss(self.loss_name, boxes.float(), targets[:, 0]), boxes


def _check_grid(head: nn.Module, feature_map: torch.Tensor) -> None:
    """Raises ValueError when ``feature_map`` is not of the size ``head.grid`` it was built for."""
    if tuple(feature_map.shape[-2:]) != head.grid:
        raise ValueError(f"the {type(head).__name__} was built for a {head.grid} feature map (its training input "
                         f"size) and got {tuple(feature_map.shape[-2:])}")


class SoftArgmaxHead(nn.Module):
    """A head on the un-pooled map: ``(N, F, h, w)`` -> 1x1 conv to ``channels`` (+ BN + ReLU) ->
    flatten -> Dropout(p) -> Linear(channels h w, 4 bins) -> per-edge :func:`soft_argmax` -> ``(N, 4)``
    normalized xyxy in [0, 1]. Its loss is :func:`localizer.model.losses.soft_argmax_loss` against the
    primary box (``loss`` plus ``dfl`` times the distribution focal loss).

    Args:
        num_features: ``F``, channels of the backbone's map.
        grid: ``(h, w)`` of the map for the training input size (its input must keep that size).
        dropout: dropout before the linear layer.
        loss, dfl: the box loss and the distribution focal loss's weight.
        channels, bins: see :data:`REDUCED_CHANNELS` and :data:`BINS`.
    """

    def __init__(self, num_features: int, grid: tuple[int, int], dropout: float = 0.5, loss: str = "smooth_l1",
                 dfl: float = 0.0, channels: int = REDUCED_CHANNELS, bins: int = BINS):
        super().__init__()
        self.grid, self.bins, self.loss_name, self.dfl = tuple(grid), int(bins), loss, float(dfl)
        self.reduce = nn.Sequential(nn.Conv2d(num_features, channels, 1, bias=False), nn.BatchNorm2d(channels),
                                    nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(p=float(dropout))
        self.edges = nn.Linear(channels * self.grid[0] * self.grid[1], 4 * self.bins)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return soft_argmax(self.outputs(feature_map))

    def outputs(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The per-edge logits ``(N, 4, bins)`` (xmin, ymin, xmax, ymax).

        Raises:
            ValueError: a feature map of another size than ``grid``.
        """
        _check_grid(self, feature_map)
        return self.edges(self.dropout(self.reduce(feature_map).flatten(1))).view(-1, 4, self.bins)

    def loss(self, feature_map: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scalar loss, boxes (N, 4))`` for ``targets`` ``(N, B, 4)`` (see the module docstring)."""
        return soft_argmax_loss(self.loss_name, self.outputs(feature_map), targets[:, 0], self.dfl)


class DenseHead(nn.Module):
    """The per-location part of :class:`LargestHead` on the un-pooled map ``(N, F, h, w)``: 1x1 conv to
    ``channels`` + BN + ReLU, 3x3 conv + BN + ReLU (each cell sees its neighbours), Dropout(p), then per
    cell a 1x1 conv to the logits of its four distances (left, top, right, bottom; :data:`BINS`
    positions each, over [0, 1] of the image side) and a 1x1 conv to its score. Cell ``(i, j)`` has its
    centre at ``((j + 0.5) / w, (i + 0.5) / h)`` (``centres``, ``(L, 2)``, row-major); its box is
    ``(cx - l, cy - t, cx + r, cy + b)`` (:func:`localizer.boxes.cell_boxes`; FCOS, Tian et al., ICCV
    2019, eq. 1). ``forward`` gives the per-cell distance logits ``(N, L, 4, bins)`` and scores ``(N, L)``.

    Args:
        num_features: ``F``, channels of the backbone's map.
        grid: ``(h, w)`` of the map for the training input size (its input must keep that size).
        dropout: dropout before the per-cell outputs.
        channels, bins: see :data:`REDUCED_CHANNELS` and :data:`BINS`.
    """

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

    def forward(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-cell distance logits ``(N, L, 4, bins)`` and scores ``(N, L)`` (``L = h w``).

        Raises:
            ValueError: a feature map of another size than ``grid``.
        """
        _check_grid(self, feature_map)
        features = self.tower(feature_map)
        n = features.shape[0]
        logits = self.distances(features).flatten(2).transpose(1, 2).reshape(n, -1, 4, self.bins)
        return logits, self.scores(features).flatten(1)

    def boxes(self, logits: torch.Tensor) -> torch.Tensor:
        """Every cell's box ``(N, L, 4)``, normalized xyxy clamped to [0, 1], from the distance logits
        ``(N, L, 4, bins)`` of :meth:`forward` (:func:`localizer.boxes.cell_boxes`)."""
        return cell_boxes(soft_argmax(logits), self.centres).clamp(0, 1)


class LargestHead(nn.Module):
    """The largest detected animal (see the module docstring): a :class:`DenseHead` (``animals``,
    trained on every box with a sigmoid score per cell: :func:`localizer.model.losses.animals_loss`) and a
    :class:`SoftArgmaxHead` (``box``, trained on the primary box, the fallback) on the same map.
    ``forward`` gives ``(N, 4)`` normalized xyxy (:func:`choose_largest`); the loss is the sum of both
    parts' losses (each ``loss`` plus ``dfl`` times the distribution focal loss).

    Args:
        num_features: ``F``, channels of the backbone's map.
        grid: ``(h, w)`` of the map for the training input size (its input must keep that size).
        dropout: dropout of both parts.
        loss, dfl: the box loss and the distribution focal loss's weight.
    """

    def __init__(self, num_features: int, grid: tuple[int, int], dropout: float = 0.5, loss: str = "smooth_l1",
                 dfl: float = 0.0):
        super().__init__()
        self.grid, self.loss_name, self.dfl = tuple(grid), loss, float(dfl)
        self.box = SoftArgmaxHead(num_features, grid, dropout, loss, dfl)
        self.animals = DenseHead(num_features, grid, dropout)

    def outputs(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(box logits (N, 4, bins), cell distance logits (N, L, 4, bins), cell scores (N, L))``: the
        soft-argmax part's per-edge logits and the dense part's outputs (:meth:`DenseHead.forward`).

        Raises:
            ValueError: a feature map of another size than ``grid``.
        """
        return (self.box.outputs(feature_map), *self.animals(feature_map))

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        box_logits, cell_logits, cell_scores = self.outputs(feature_map)
        return choose_largest(soft_argmax(box_logits), self.animals.boxes(cell_logits), cell_scores)

    def loss(self, feature_map: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scalar loss, boxes (N, 4))`` for ``targets`` ``(N, B, 4)``, every animal's box (see the module
        docstring); the boxes are :func:`choose_largest`'s, as :meth:`forward` predicts."""
        box_logits, cell_logits, cell_scores = self.outputs(feature_map)
        loss, box = soft_argmax_loss(self.loss_name, box_logits, targets[:, 0], self.dfl)
        loss = loss + animals_loss(self.loss_name, cell_logits, cell_scores, self.animals.centres, targets, self.dfl)
        return loss, choose_largest(box.detach(), self.animals.boxes(cell_logits.detach()), cell_scores)


def _detections(cell_boxes: torch.Tensor, cell_scores: torch.Tensor, score: float, nms_iou: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(boxes (D, 4), image (D,))``: every detection of the batch (see :func:`detect_animals`), sorted by
    image and, within an image, best scored first; one :func:`torchvision.ops.batched_nms` per batch."""
    probs = cell_scores.detach().float().sigmoid()
    image, cell = (probs >= score).nonzero(as_tuple=True)
    boxes, probs = cell_boxes.detach().float()[image, cell], probs[image, cell]
    keep = batched_nms(boxes, probs, image, nms_iou)  # best scored first, over the whole batch
    keep = keep[torch.sort(image[keep], stable=True).indices]
    return boxes[keep], image[keep]


def detect_animals(cell_boxes: torch.Tensor, cell_scores: torch.Tensor, score: float = ANIMAL_SCORE,
                   nms_iou: float = ANIMAL_NMS_IOU) -> list[torch.Tensor]:
    """The animals each photo's cells detect: per image, the boxes ``(D, 4)`` (normalized xyxy, best
    scored first) of the cells whose sigmoid score is >= ``score``, after non-maximum suppression at
    ``nms_iou`` within the image (:func:`torchvision.ops.batched_nms`). From ``cell_boxes`` ``(N, L, 4)``
    and ``cell_scores`` ``(N, L)`` (logits)."""
    boxes, image = _detections(cell_boxes, cell_scores, score, nms_iou)
    return list(boxes.split(torch.bincount(image, minlength=len(cell_scores)).tolist()))


def choose_largest(box: torch.Tensor, cell_boxes: torch.Tensor, cell_scores: torch.Tensor,
                   score: float = ANIMAL_SCORE, nms_iou: float = ANIMAL_NMS_IOU,
                   agreement: float = LARGEST_AGREEMENT) -> torch.Tensor:
    """:class:`LargestHead`'s prediction ``(N, 4)``: the largest (by area; ties: the best scored) of the
    animals :func:`detect_animals` finds, except where it overlaps the soft-argmax ``box`` ``(N, 4)`` with
    IoU > ``agreement`` (never with the default 1: see :data:`LARGEST_AGREEMENT`); a photo with no
    detection keeps ``box``. (Gradients flow through ``box`` only.)"""
    found, image = _detections(cell_boxes, cell_scores, score, nms_iou)
    n, count = len(box), len(found)
    area = box_area(found)
    most = area.new_full((n,), -1.0).scatter_reduce(0, image, area, "amax")
    candidates = torch.where(area == most[image], torch.arange(count, device=area.device), count)
    first = candidates.new_full((n,), count).scatter_reduce(0, image, candidates, "amin")  # (N,): index or count
    rows = (first < count).nonzero().flatten()
    largest = found[first[rows]]
    overlap = box_iou(sanitize_boxes(box[rows].detach().float()), largest).diagonal()
    rows, largest = rows[overlap <= agreement], largest[overlap <= agreement]
    out = box.clone()
    out[rows] = largest.to(out.dtype)
    return out


def build_head(name: str, num_features: int, grid: tuple[int, int], dropout: float, loss: str = "smooth_l1",
               dfl: float = 0.0) -> nn.Module:
    """The head ``name`` (one of :data:`localizer.recipe.HEADS`) for a ``num_features``-channel map of size
    ``grid``, trained with the box loss ``loss`` plus ``dfl`` times the distribution focal loss.

    Raises:
        ValueError: an unknown head, or ``dfl`` > 0 with the ``linear`` head (it has no distributions).
    """
    if name == "linear":
        if dfl:
            raise ValueError("the linear head has no per-edge distributions for the distribution focal loss")
        return LinearHead(num_features, dropout, loss)
    if name == "softargmax":
        return SoftArgmaxHead(num_features, grid, dropout, loss, dfl)
    if name == "largest":
        return LargestHead(num_features, grid, dropout, loss, dfl)
    raise ValueError(f"unknown head {name!r}; expected one of {HEADS}")
