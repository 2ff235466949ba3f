"""Box heads: from the backbone's feature map ``(N, F, h, w)`` to one normalized xyxy box ``(N, 4)``.

Every head has one interface, as torchvision's detection models own their losses: ``head(feature_map)``
gives the boxes ``(N, 4)`` and ``head.loss(feature_map, targets)`` gives ``(scalar loss, boxes (N, 4))``
(the boxes as the head predicts them, for the epoch's IoU), where ``targets`` are ``(N, B, 4)``
normalized xyxy boxes, the primary box first and rows of zeros as padding
(:func:`localizer.data.datasets.box_targets`); ``head.predict(feature_map)`` gives ``(boxes (N, 4),
quality (N,))``: the boxes of ``head(feature_map)`` and an estimate in [0, 1] of how good each one is, from
the sharpness of its per-edge distributions (:func:`edge_quality`; 1 for every box of the ``linear``
head, which has none), for the confidence of :func:`localizer.engine.inference.predict_batch`. The box
loss (``loss``, one of :data:`localizer.recipe.LOSSES`) and the distribution focal loss's weight (``dfl``)
are given to a head when it is built (:func:`build_head`, from the recipe).

* ``linear`` — the course report's head: global average pooling, Dropout(p), Linear(F, 4). Pooling
  throws away *where* the features are; the linear layer must read the box off what survives.
* ``softargmax`` — a head that keeps where things are: a 1x1 convolution reduces the map to
  :data:`REDUCED_CHANNELS` channels (+ BatchNorm + ReLU), which are flattened with their positions
  (as fastai's VOC largest-object lesson flattens the map instead of pooling it), then Dropout(p)
  and a linear layer give, for each of the four edges, logits over :data:`BINS` positions spread
  evenly over [0, 1]. Each edge is the expectation of its softmax distribution (a soft-argmax:
  :func:`localizer.model.geometry.soft_argmax`; per-edge distributions as in Li et al., "Generalized Focal
  Loss", NeurIPS 2020, and 1-D coordinate classification as in SimCC, Li et al., ECCV 2022). The
  result always lies in [0, 1], and a one-hot distribution at bin ``k`` gives exactly ``k / (BINS - 1)``,
  so edges on the image border (frequent with tight framing) are reachable.
* ``largest`` — detect every animal, predict the largest: a per-location part (:class:`DenseHead`,
  FCOS-style: Tian et al., ICCV 2019) is trained on *every* annotated animal (each cell scores, with a
  sigmoid, whether an animal's centre is near it, and predicts that animal's box), and the prediction
  is the largest box it detects (:func:`~localizer.model.detection.choose_largest`): the ground truth is
  the largest animal, and on a photo with several a head that regresses one box can put it between them
  or around the group. Beside it, a ``softargmax`` head is trained on the primary box; its box is the
  prediction where no cell detects an animal.
"""

from __future__ import annotations

import torch
from torch import nn

from localizer.model.geometry import cell_boxes, soft_argmax
from localizer.model.detection import choose_largest, largest_cell, take_cells
from localizer.model.losses import animals_loss, box_loss, soft_argmax_loss
from localizer.recipe import HEADS

__all__ = ["BINS", "REDUCED_CHANNELS", "DenseHead", "LargestHead", "LinearHead", "SoftArgmaxHead", "build_head",
           "edge_quality"]

REDUCED_CHANNELS = 64
BINS = 32


def edge_quality(logits: torch.Tensor) -> torch.Tensor:
    """A box's quality estimate ``(...)`` in [0, 1] from the logits ``(..., 4, K)`` of its four per-edge
    distributions over the positions ``k / (K - 1)``: 1 - 2 x the mean over the edges of each softmax
    distribution's standard deviation (normalized units; 0.5 is the most a distribution on [0, 1] can have,
    half its mass at each end), so 1 for four one-hot edges. A sharp distribution is a well-located edge:
    Li et al., "Generalized Focal Loss V2", CVPR 2021, read a box's localization quality off the same
    distributions (their top-k probabilities). Computed in float32."""
    probs = logits.float().softmax(dim=-1)
    positions = torch.linspace(0.0, 1.0, logits.shape[-1], device=logits.device)
    mean = (probs * positions).sum(dim=-1, keepdim=True)
    std = (probs * (positions - mean) ** 2).sum(dim=-1).clamp_min(0).sqrt()
    return 1 - 2 * std.mean(dim=-1)


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

    def predict(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes (N, 4), quality (N,))``: a linear head has no estimate of its box's quality: 1 for all."""
        boxes = self(feature_map)
        return boxes, torch.ones_like(boxes[:, 0], dtype=torch.float32)  # not len(): an ONNX trace would fix it


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

    def predict(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes (N, 4), quality (N,))``: the boxes of :meth:`forward` and the :func:`edge_quality` of their
        per-edge distributions."""
        logits = self.outputs(feature_map)
        return soft_argmax(logits), edge_quality(logits)


class DenseHead(nn.Module):
    """The per-location part of :class:`LargestHead` on the un-pooled map ``(N, F, h, w)``: 1x1 conv to
    ``channels`` + BN + ReLU, 3x3 conv + BN + ReLU (each cell sees its neighbours), Dropout(p), then per
    cell a 1x1 conv to the logits of its four distances (left, top, right, bottom; :data:`BINS`
    positions each, over [0, 1] of the image side) and a 1x1 conv to its score. Cell ``(i, j)`` has its
    centre at ``((j + 0.5) / w, (i + 0.5) / h)`` (``centres``, ``(L, 2)``, row-major); its box is
    ``(cx - l, cy - t, cx + r, cy + b)`` (:func:`localizer.model.geometry.cell_boxes`; FCOS, Tian et al., ICCV
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
        ``(N, L, 4, bins)`` of :meth:`forward` (:func:`localizer.model.geometry.cell_boxes`)."""
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

    def predict(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes (N, 4), quality (N,))``: the boxes of :meth:`forward` and the :func:`edge_quality` of the
        distributions they were read from: the chosen cell's four distances
        (:func:`~localizer.model.detection.largest_cell`), or the soft-argmax part's edges."""
        box_logits, cell_logits, cell_scores = self.outputs(feature_map)
        box, cells = soft_argmax(box_logits), self.animals.boxes(cell_logits)
        cell = largest_cell(box, cells, cell_scores)
        return take_cells(box, cells, cell), take_cells(edge_quality(box_logits), edge_quality(cell_logits), cell)

    def loss(self, feature_map: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scalar loss, boxes (N, 4))`` for ``targets`` ``(N, B, 4)``, every animal's box (see the module
        docstring); the boxes are :func:`choose_largest`'s, as :meth:`forward` predicts."""
        box_logits, cell_logits, cell_scores = self.outputs(feature_map)
        loss, box = soft_argmax_loss(self.loss_name, box_logits, targets[:, 0], self.dfl)
        loss = loss + animals_loss(self.loss_name, cell_logits, cell_scores, self.animals.centres, targets, self.dfl)
        return loss, choose_largest(box.detach(), self.animals.boxes(cell_logits.detach()), cell_scores)


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
