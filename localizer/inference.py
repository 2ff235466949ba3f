"""Inference: the model's boxes for batches of cached uint8 images, as evaluation and prediction
share it (one input preparation, the training's numerics, optional flip test-time augmentation)."""

from __future__ import annotations

import torch

from .boxes import hflip_boxes
from .data import make_loader
from .metrics import sanitize_boxes
from .numerics import Numerics, default_numerics
from .progress import progress_bar
from .transforms import model_input


@torch.no_grad()
def predict_batch(model, images: torch.Tensor, mean, std, tta: bool = False, numerics: Numerics | None = None
                  ) -> torch.Tensor:
    """Normalized xyxy predictions ``(N, 4)`` (float32, on CPU) for uint8 images ``(N, 3, S, S)``.

    With ``tta`` the prediction is the mean of the plain one and the un-mirrored prediction on the
    mirrored image (horizontal-flip test-time augmentation). Boxes are sanitized (see
    :func:`localizer.metrics.sanitize_boxes`). ``numerics``: how to compute (what
    :func:`localizer.run.load_model` returns in ``info["numerics"]``: the training's format);
    default float32 on the model's device.
    """
    numerics = numerics or default_numerics(next(model.parameters()).device, "fp32")
    x = model_input(images, numerics, mean, std)
    with numerics.autocast():
        pred = model(x).float()
        if tta:
            pred = (pred + hflip_boxes(model(x.flip(-1)).float())) / 2
    return sanitize_boxes(pred).cpu()


def predict_dataset(model, dataset, mean, std, batch_size: int = 64, tta: bool = False, progress: bool = True,
                    numerics: Numerics | None = None) -> torch.Tensor:
    """Predictions ``(N, 4)`` normalized xyxy for every item of a dataset of ``(image, target)``
    (``numerics``: see :func:`predict_batch`)."""
    model.eval()
    loader = make_loader(dataset, batch_size=batch_size)
    preds = [predict_batch(model, images, mean, std, tta, numerics)
             for images, _ in progress_bar(loader, show=progress, desc="predicting", unit="batch", leave=False)]
    return torch.cat(preds) if preds else torch.zeros(0, 4)
