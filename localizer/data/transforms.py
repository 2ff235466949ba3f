"""Image and box transforms, built from :mod:`torchvision.transforms.v2` with
:class:`torchvision.tv_tensors.BoundingBoxes`, so boxes follow every geometric change.

* :func:`build_transforms` — the whole per-image pipeline from a decoded PIL image and its pixel box:
  resize to ``image_size`` x ``image_size`` (aspect ratio not kept, as in the course report), train-only
  augmentation (:func:`build_augmentation`), float conversion and, when asked, the backbone's
  normalization: the textbook per-item pipeline (notebook 02 shows its resize and normalization on
  one photo; with ``train=True`` it is the benchmark's ``plain`` baseline). Training does not use it.
* Training and prediction convert the decode-once cache's uint8 batches whole, on the device
  (:func:`localizer.engine.numerics.model_input`), and the model normalizes them; training augments
  them first with :class:`localizer.data.batch_augment.BatchAugment` (the same flip and ColorJitter,
  drawn per image).

Targets are float32 ``(4,)`` xyxy boxes normalized to [0, 1] by the canvas size.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


#: ColorJitter strengths for training. The report names ColorJitter without values; these are mild
#: photometric changes that keep a lion a lion. No hue shift: on uint8 tensors it costs about 5 ms
#: per 256 px image (RGB -> HSV -> RGB), seven times brightness + contrast + saturation together
#: (0.7 ms), and an animal's hue says little about where its box is.
COLOR_JITTER = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.0}

#: Probability of the train-time horizontal flip (the report's RandomHorizontalFlip p=0.5).
FLIP_P = 0.5


def build_augmentation(train: bool, flip_p: float = FLIP_P, color_jitter: dict | None = None) -> v2.Transform:
    """Train-time augmentation for ``(image, BoundingBoxes)`` pairs; the identity when ``train`` is False.
    The per-item counterpart of :class:`localizer.data.batch_augment.BatchAugment` (which training
    uses, and which adds the scale + shift), kept for :func:`build_transforms`.

    RandomHorizontalFlip(``flip_p``) moves the box with the image (xmin' = W - xmax, xmax' = W - xmin)
    and ColorJitter(``color_jitter``, default :data:`COLOR_JITTER`) changes only pixel values.
    Works on uint8 or float image tensors ``(3, H, W)`` and on PIL images.
    """
    if not train:
        return v2.Identity()
    jitter = COLOR_JITTER if color_jitter is None else color_jitter
    steps = [v2.RandomHorizontalFlip(p=flip_p)]
    if any(jitter.values()):
        steps.append(v2.ColorJitter(**jitter))
    return v2.Compose(steps)


def build_transforms(image_size: int, train: bool, mean: tuple[float, float, float] | None = None,
                     std: tuple[float, float, float] | None = None) -> v2.Transform:
    """Full per-image pipeline: PIL image + pixel ``BoundingBoxes`` -> float tensor + boxes.

    Steps: ``ToImage`` -> ``Resize((image_size, image_size))`` (antialiased) -> augmentation when
    ``train`` -> ``ToDtype(float32, scale=True)`` -> ``Normalize(mean, std)`` when they are given (a
    model normalizes its [0, 1] inputs itself; notebook 02 shows the step). Output image
    ``(3, image_size, image_size)`` float32; boxes in pixels of the ``image_size`` canvas (use
    :func:`boxes_to_target`).
    """
    steps = [v2.ToImage(), v2.Resize((image_size, image_size), antialias=True), build_augmentation(train),
             v2.ToDtype(torch.float32, scale=True)]
    if mean is not None:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return v2.Compose(steps)


def resize_image(image, image_size: int):
    """Resize a PIL image or ``(3, H, W)`` tensor to ``image_size`` x ``image_size`` (bilinear,
    antialiased) exactly as :func:`build_transforms` does."""
    return F.resize(image, [image_size, image_size], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def pixel_boxes(boxes_xyxy: torch.Tensor, height: int, width: int) -> tv_tensors.BoundingBoxes:
    """Wrap ``(K, 4)`` pixel xyxy boxes of a ``height`` x ``width`` image as ``BoundingBoxes``."""
    return tv_tensors.BoundingBoxes(
        torch.as_tensor(boxes_xyxy, dtype=torch.float32).reshape(-1, 4), format="XYXY",
        canvas_size=(height, width),
    )


def boxes_to_target(boxes: tv_tensors.BoundingBoxes) -> torch.Tensor:
    """First box of ``boxes`` as a float32 ``(4,)`` xyxy target normalized by its canvas size."""
    height, width = boxes.canvas_size
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return boxes.as_subclass(torch.Tensor)[0].float() / scale
