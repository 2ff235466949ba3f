"""Inference: the model's boxes for batches of cached uint8 images, as evaluation and prediction
share it (one input preparation, the training's numerics, optional flip test-time augmentation), and
the confidence of each box (:func:`box_confidence`)."""

from __future__ import annotations

import torch

from localizer.boxes import hflip_boxes
from localizer.engine.datasets import make_loader
from localizer.metrics import paired_iou, sanitize_boxes
from localizer.engine.numerics import Numerics, default_numerics
from localizer.progress import progress_bar
from localizer.engine.transforms import model_input

#: Flip TTA averages the two boxes only when they overlap with IoU > this (the PASCAL VOC criterion: each
#: would count as a detection of the other); chosen on the lion validation split (README, ablation 20;
#: ``experiments/tta_fusion.py``).
TTA_AGREEMENT = 0.5


def fuse_flip(plain: torch.Tensor, flipped: torch.Tensor, agreement: float | None = TTA_AGREEMENT) -> torch.Tensor:
    """Flip test-time augmentation: boxes ``(N, 4)`` normalized xyxy from the plain predictions and the
    un-mirrored predictions on the mirrored images (both ``(N, 4)``).

    The mean of the two where they overlap with IoU > ``agreement``, the plain box where they do not
    (``agreement`` None: the mean, always). Boxes are averaged only when they are of the same object,
    as weighted boxes fusion averages only boxes that overlap (Solovyev et al., "Weighted boxes
    fusion", Image and Vision Computing, 2021): on a photo with two animals the two predictions can
    each take one of them, and their mean would fall between both.
    """
    mean = (plain + flipped) / 2
    if agreement is None:
        return mean
    agree = paired_iou(sanitize_boxes(plain), sanitize_boxes(flipped)) > agreement
    return torch.where(agree[:, None].to(plain.device), mean, plain)


def box_confidence(plain: torch.Tensor, flipped: torch.Tensor, quality: torch.Tensor,
                   flipped_quality: torch.Tensor) -> torch.Tensor:
    """The confidence ``(N,)`` in [0, 1] of each prediction, an estimate of how good its box is: the IoU of
    the plain box with the un-mirrored box of the mirrored photo (``plain``, ``flipped``: ``(N, 4)``
    normalized xyxy, sanitized here; 1 where the two views agree exactly, low where they take different
    animals) times the mean of the two views' quality estimates (``quality``, ``flipped_quality``: ``(N,)``
    in [0, 1], the sharpness of the head's per-edge distributions: ``head.predict`` of
    :mod:`localizer.model.heads`; 1 for the linear head, whose confidence is then the flip IoU alone).
    Chosen by Spearman's rank correlation with the IoU on validation splits, among the flip IoU, the
    distributions' spread and their product (``experiments/confidence_estimates.py``, ``quick`` runs): lion,
    364 photos, 0.765 / 0.811 / 0.812; Oxford-IIIT Pet sample, 89 photos, 0.520 / 0.607 / 0.615. The same
    with or without flip TTA (both views are computed).
    Two boxes without area (a linear head's box outside the photo, clamped to its border) agree with IoU 0."""
    agreement = paired_iou(sanitize_boxes(plain.float()), sanitize_boxes(flipped.float())).nan_to_num(0.0)
    return agreement * (quality.float() + flipped_quality.float()) / 2


@torch.no_grad()
def predict_batch(model, images: torch.Tensor, mean, std, tta: bool = False, numerics: Numerics | None = None,
                  confidence: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Normalized xyxy predictions ``(N, 4)`` (float32, on CPU) for uint8 images ``(N, 3, S, S)``.

    With ``tta`` (horizontal-flip test-time augmentation) the prediction is :func:`fuse_flip` of the
    plain one and the un-mirrored prediction on the mirrored image: their mean where they agree
    (IoU > :data:`TTA_AGREEMENT`), else the plain one. Boxes are sanitized (see
    :func:`localizer.metrics.sanitize_boxes`). ``numerics``: how to compute (what
    :func:`localizer.engine.run.load_model` returns in ``info["numerics"]``: the training's format);
    default float32 on the model's device. With ``confidence``: ``(boxes, confidence (N,))``, the
    confidence of :func:`box_confidence` (float32, on CPU; the model's ``predict`` gives each view's box
    and quality, and the mirrored view is computed also without ``tta``).
    """
    numerics = numerics or default_numerics(next(model.parameters()).device, "fp32")
    x = model_input(images, numerics, mean, std)
    with numerics.autocast():
        if not confidence:
            pred = model(x).float()
            if tta:
                pred = fuse_flip(pred, hflip_boxes(model(x.flip(-1)).float()))
            return sanitize_boxes(pred).cpu()
        (pred, quality), (flipped, flipped_quality) = model.predict(x), model.predict(x.flip(-1))
    pred, flipped = pred.float(), hflip_boxes(flipped.float())
    score = box_confidence(pred, flipped, quality, flipped_quality)
    return sanitize_boxes(fuse_flip(pred, flipped) if tta else pred).cpu(), score.cpu()


def predict_dataset(model, dataset, mean, std, batch_size: int = 64, tta: bool = False, progress: bool = True,
                    numerics: Numerics | None = None, confidence: bool = False
                    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Predictions ``(N, 4)`` normalized xyxy for every item of a dataset of ``(image, target)``
    (``numerics``: see :func:`predict_batch`); with ``confidence``: ``(boxes, confidence (N,))``."""
    model.eval()
    loader = make_loader(dataset, batch_size=batch_size)
    preds = [predict_batch(model, images, mean, std, tta, numerics, confidence)
             for images, _ in progress_bar(loader, show=progress, desc="predicting", unit="batch", leave=False)]
    if not confidence:
        return torch.cat(preds) if preds else torch.zeros(0, 4)
    if not preds:
        return torch.zeros(0, 4), torch.zeros(0)
    boxes, scores = zip(*preds)
    return torch.cat(boxes), torch.cat(scores)
