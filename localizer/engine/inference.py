"""Inference: the model's boxes for batches of cached uint8 images, as evaluation and prediction
share it (one input preparation, the training's numerics, optional flip test-time augmentation), and
the confidence of each box (:func:`box_confidence`)."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from localizer.boxes import hflip_boxes
from localizer.data.batch_augment import AFFINE_FILL
from localizer.data.datasets import make_loader
from localizer.metrics import paired_iou, sanitize_boxes
from localizer.engine.numerics import Numerics, default_numerics, model_input
from localizer.progress import progress_bar

#: Flip TTA averages the two boxes only when they overlap with IoU > this (the PASCAL VOC criterion: each
#: would count as a detection of the other; docs/ablations.md, row 20).
TTA_AGREEMENT = 0.5


def fuse_flip(plain: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """Flip test-time augmentation: boxes ``(N, 4)`` normalized xyxy from the plain predictions and the
    un-mirrored predictions on the mirrored images (both ``(N, 4)``).

    The mean of the two where they overlap with IoU > :data:`TTA_AGREEMENT`, the plain box where they do
    not. Boxes are averaged only when they are of the same object, as weighted boxes fusion averages
    only boxes that overlap (Solovyev et al., "Weighted boxes fusion", Image and Vision Computing, 2021):
    on a photo with two animals the two predictions can each take one of them, and their mean would fall
    between both.
    """
    agree = paired_iou(sanitize_boxes(plain), sanitize_boxes(flipped)) > TTA_AGREEMENT
    return torch.where(agree[:, None].to(plain.device), (plain + flipped) / 2, plain)


#: The confidence's third view (:func:`box_confidence`): the photo shrunk by this factor about its centre, the
#: border filled with training's grey (:data:`localizer.data.batch_augment.AFFINE_FILL`); training's scale +
#: shift draws scales in 0.75-1.15, so the model has seen such views (docs/ablations.md, rows 29 and 36).
CONFIDENCE_ZOOM = 0.9


#: What :func:`box_confidence` computes, in words: stored beside a threshold chosen from it
#: (:func:`localizer.engine.review.flag_threshold`), which a new rule makes stale.
CONFIDENCE_RULE = (f"min(flip IoU, IoU with the {CONFIDENCE_ZOOM:g} zoom-out made in float32) "
                   "x (1 - 2 x std of the edge distributions)")


def zoom_out(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Float images ``(N, C, H, W)`` in [0, 1] shrunk by ``scale`` about their centre on a canvas of the same size
    (bilinear), the uncovered border filled with training's grey (:data:`localizer.data.batch_augment.AFFINE_FILL`),
    as its scale + shift fills it.

    The arithmetic of :func:`torchvision.transforms.v2.functional.affine` for this map, op for op (its inverse
    matrix ``diag(1 / scale)``, its pixel-centred base grid, ``grid_sample`` of the images with a mask channel, the
    fill blended as ``(image - fill) x mask + fill``), so the values are equal (a test checks it); written without
    torchvision's in-place writes into an uninitialized grid, which an ONNX export traces wrong. Always in float32:
    under bf16 autocast torchvision's would compute its grid in bf16 and then round the images to whole numbers.
    """
    with torch.autocast(x.device.type, enabled=False):
        return _zoom_out(x.float(), scale)


def _zoom_out(x: torch.Tensor, scale: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    theta = torch.tensor([[1 / scale, 0.0, 0.0], [0.0, 1 / scale, 0.0]], dtype=x.dtype, device=x.device)[None]
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=x.device).to(x.dtype)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=x.device).to(x.dtype)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones_like(xs).expand(h, w)], dim=-1)
    rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=x.dtype, device=x.device)
    grid = base.reshape(1, h * w, 3).bmm(rescaled).reshape(1, h, w, 2).expand(x.shape[0], h, w, 2)
    sampled = torch.nn.functional.grid_sample(torch.cat((x, torch.ones_like(x[:, :1])), dim=1), grid,
                                              mode="bilinear", padding_mode="zeros", align_corners=False)
    fill = torch.tensor([AFFINE_FILL], dtype=sampled.dtype, device=x.device).view(1, -1, 1, 1)
    return (sampled[:, :-1] - fill) * sampled[:, -1:].expand_as(sampled[:, :-1]) + fill


def unzoom_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """Boxes ``(..., 4)`` normalized xyxy predicted on images shrunk by ``scale`` about their centre
    (:func:`zoom_out`) -> the same boxes on the original images: ``p = 0.5 + (p' - 0.5) / scale``, the inverse
    of the affine map about the canvas centre. E.g. at 0.9, (0.05, 0.05, 0.95, 0.95) -> (0, 0, 1, 1)."""
    return 0.5 + (boxes - 0.5) / scale


def box_confidence(plain: torch.Tensor, flipped: torch.Tensor, zoomed: torch.Tensor, quality: torch.Tensor,
                   flipped_quality: torch.Tensor) -> torch.Tensor:
    """The confidence ``(N,)`` in [0, 1] of each prediction, an estimate of how good its box is:
    ``min(IoU(plain, flipped), IoU(plain, zoomed)) x (quality + flipped_quality) / 2``.

    Args:
        plain, flipped, zoomed: ``(N, 4)`` normalized xyxy (sanitized here): the box of the photo, the
            un-mirrored box of the mirrored photo, and the box of the photo zoomed out by
            :data:`CONFIDENCE_ZOOM`, mapped back (:func:`unzoom_boxes`). The smaller of the two agreements
            is 1 where all three views agree exactly and low where any of them takes another animal or
            another extent.
        quality, flipped_quality: ``(N,)`` in [0, 1], the sharpness of the head's per-edge distributions
            (1 - 2 x their mean standard deviation: ``head.predict`` of :mod:`localizer.model.heads`) on the
            photo and on the mirrored photo; 1 for the linear head, whose confidence is then the agreement alone.

    Chosen on validation splits by Spearman's rank correlation with the IoU and by the accuracy at IoU > 0.5
    of the most confident 80 % (docs/ablations.md, rows 31 and 36). The same with or without flip TTA (all
    three views are computed). Two boxes without area (a linear head's box outside the photo, clamped to its
    border) agree with IoU 0.
    """
    def agreement(other: torch.Tensor) -> torch.Tensor:
        return paired_iou(sanitize_boxes(plain.float()), sanitize_boxes(other.float())).nan_to_num(0.0)

    return torch.minimum(agreement(flipped), agreement(zoomed)) * (quality.float() + flipped_quality.float()) / 2


def boxes_and_confidence(model, x: torch.Tensor, numerics: Numerics | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three views of float images ``x`` ``(N, 3, S, S)`` in [0, 1] (as :func:`model_input` gives them) and
    what they give: ``(boxes, flip TTA boxes, confidence)``, boxes ``(N, 4)`` normalized xyxy, sanitized
    (:func:`localizer.metrics.sanitize_boxes`), the second :func:`fuse_flip` of the plain and the un-mirrored
    mirrored view, the confidence ``(N,)`` :func:`box_confidence` of the plain, mirrored and zoomed-out views;
    float32, on ``x``'s device. ``numerics``: the training's format (autocast, memory layout); None: float32
    as ``x`` is. The one computation of :func:`predict_batch` and of the exported ONNX model
    (:mod:`localizer.engine.export`)."""
    with numerics.autocast() if numerics is not None else nullcontext():
        (pred, quality), (flipped, flipped_quality) = model.predict(x), model.predict(x.flip(-1))
        zoomed = zoom_out(x, CONFIDENCE_ZOOM)
        zoomed, _ = model.predict(numerics.place_images(zoomed) if numerics is not None else zoomed)
    pred, flipped, zoomed = pred.float(), hflip_boxes(flipped.float()), unzoom_boxes(zoomed.float(), CONFIDENCE_ZOOM)
    score = box_confidence(pred, flipped, zoomed, quality, flipped_quality)
    return sanitize_boxes(pred), sanitize_boxes(fuse_flip(pred, flipped)), score


@torch.no_grad()
def predict_batch(model, images: torch.Tensor, tta: bool = False, numerics: Numerics | None = None,
                  confidence: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Normalized xyxy predictions ``(N, 4)`` (float32, on CPU) for uint8 images ``(N, 3, S, S)``.

    With ``tta`` (horizontal-flip test-time augmentation) the prediction is :func:`fuse_flip` of the
    plain one and the un-mirrored prediction on the mirrored image: their mean where they agree
    (IoU > :data:`TTA_AGREEMENT`), else the plain one. Boxes are sanitized (see
    :func:`localizer.metrics.sanitize_boxes`). ``numerics``: how to compute (what
    :func:`localizer.engine.checkpoints.load_model` returns in ``info["numerics"]``: the training's format);
    default float32 on the model's device. With ``confidence``: ``(boxes, confidence (N,))``, the
    confidence of :func:`box_confidence` (float32, on CPU; the model's ``predict`` gives each view's box
    and quality, and the mirrored and zoomed-out views are computed also without ``tta``:
    :func:`boxes_and_confidence`).
    """
    numerics = numerics or default_numerics(next(model.parameters()).device, "fp32")
    x = model_input(images, numerics)
    if confidence:
        plain, fused, score = boxes_and_confidence(model, x, numerics)
        return (fused if tta else plain).cpu(), score.cpu()
    with numerics.autocast():
        pred = model(x).float()
        if tta:
            pred = fuse_flip(pred, hflip_boxes(model(x.flip(-1)).float()))
    return sanitize_boxes(pred).cpu()


def predict_dataset(model, dataset, batch_size: int = 64, tta: bool = False, progress: bool = True,
                    numerics: Numerics | None = None, confidence: bool = False
                    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Predictions ``(N, 4)`` normalized xyxy for every item of a dataset of ``(image, target)``
    (``numerics``: see :func:`predict_batch`); with ``confidence``: ``(boxes, confidence (N,))``."""
    model.eval()
    loader = make_loader(dataset, batch_size=batch_size)
    preds = [predict_batch(model, images, tta, numerics, confidence)
             for images, _ in progress_bar(loader, show=progress, desc="predicting", unit="batch", leave=False)]
    if not confidence:
        return torch.cat(preds) if preds else torch.zeros(0, 4)
    if not preds:
        return torch.zeros(0, 4), torch.zeros(0)
    boxes, scores = zip(*preds)
    return torch.cat(boxes), torch.cat(scores)
