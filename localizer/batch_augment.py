"""Train-time augmentation of whole batches on the training device: the report's
RandomHorizontalFlip (p=0.5, box moved with the image) and ColorJitter, with random parameters
drawn per image.

Why not ``torchvision.transforms.v2`` on the batch: a v2 transform called on an ``(N, 3, H, W)``
tensor draws *one* set of random parameters for the whole batch (every image flipped or none,
one brightness factor for all). Per-image randomness over a batch is what this module adds; the
image operations themselves are torchvision's:

* flip: :func:`torchvision.transforms.v2.functional.horizontal_flip` for the pixels and
  :func:`~torchvision.transforms.v2.functional.horizontal_flip_bounding_boxes` for the boxes
  (normalized xyxy, so the canvas is 1 x 1: xmin' = 1 - xmax, xmax' = 1 - xmin), selected per image;
* ColorJitter: the blends of torchvision's ``adjust_brightness`` (image x f), ``adjust_contrast``
  (blend with the mean of the grey image) and ``adjust_saturation`` (blend with the grey image,
  ITU-R 601-2 luma via :func:`~torchvision.transforms.v2.functional.rgb_to_grayscale`), with a factor
  tensor of shape ``(N, 1, 1, 1)`` instead of one float. Factors are drawn uniformly from
  ``[max(0, 1 - s), 1 + s]`` as ``v2.ColorJitter`` does; the order of the three changes is drawn
  once per batch (v2 draws it once per call, i.e. per image in a per-item pipeline).

The random numbers are drawn on the CPU from torch's global generator (seeded per epoch by
:func:`localizer.training.fit`), so a seed gives the same augmentation on any device, and drawing
them never waits for the GPU. The work is about a dozen element-wise passes over the batch (on 2 CPU
cores, a few per cent of a ResNet18 training step; on a GPU, memory-bound kernels over 25 MB
for 32 images of 256 px), instead of per-image transforms in loader workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from .transforms import COLOR_JITTER, FLIP_P

#: The order of the jitter columns in :class:`AugmentParams` ``factors``.
JITTER_OPS = ("brightness", "contrast", "saturation")


@dataclass
class AugmentParams:
    """Random parameters for one batch of ``N`` images.

    Attributes:
        flip: ``(N,)`` bool, True where the image is mirrored.
        factors: ``(N, 3)`` float32 brightness, contrast and saturation factors (1 = unchanged).
        order: the jitter operations in the order applied (a permutation of :data:`JITTER_OPS`,
            only those with a non-zero strength).
    """

    flip: torch.Tensor
    factors: torch.Tensor
    order: tuple[str, ...]


class BatchAugment:
    """Per-image random flip + ColorJitter of a whole batch, on the batch's device.

    Args:
        flip_p: probability of mirroring each image (the report's 0.5).
        color_jitter: strengths ``{"brightness", "contrast", "saturation"}`` (default
            :data:`localizer.transforms.COLOR_JITTER`: 0.2 each). ``hue`` must be 0 or absent: a hue
            shift (RGB -> HSV -> RGB) costs several times the other three together and says little
            about where an animal is, so the training recipe leaves it out.

    Raises:
        ValueError: ``flip_p`` outside [0, 1], a negative strength, or a non-zero hue.

    Call with uint8 or float images ``(N, 3, H, W)`` and ``(N, 4)`` xyxy boxes normalized to [0, 1];
    returns float32 images in [0, 1] (same device and shape; normalize them next) and the boxes.
    """

    def __init__(self, flip_p: float = FLIP_P, color_jitter: dict | None = None):
        jitter = dict(COLOR_JITTER if color_jitter is None else color_jitter)
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {flip_p}")
        if jitter.pop("hue", 0.0):
            raise ValueError("BatchAugment has no hue shift; set the hue strength to 0")
        unknown = set(jitter) - set(JITTER_OPS)
        if unknown:
            raise ValueError(f"unknown ColorJitter strengths {sorted(unknown)}; expected {JITTER_OPS}")
        if any(value < 0 for value in jitter.values()):
            raise ValueError(f"ColorJitter strengths must be >= 0, got {jitter}")
        self.flip_p = flip_p
        self.strengths = tuple(float(jitter.get(op, 0.0)) for op in JITTER_OPS)

    def __repr__(self) -> str:
        jitter = ", ".join(f"{op}={s}" for op, s in zip(JITTER_OPS, self.strengths))
        return f"BatchAugment(flip_p={self.flip_p}, {jitter})"

    def sample(self, n: int) -> AugmentParams:
        """Draw the parameters for ``n`` images from torch's global (CPU) generator."""
        flip = torch.rand(n) < self.flip_p
        low = torch.tensor([max(0.0, 1.0 - s) for s in self.strengths])
        high = torch.tensor([1.0 + s for s in self.strengths])
        factors = low + (high - low) * torch.rand(n, len(JITTER_OPS))
        order = tuple(JITTER_OPS[i] for i in torch.randperm(len(JITTER_OPS)).tolist()
                      if self.strengths[i] > 0)
        return AugmentParams(flip, factors, order)

    def __call__(self, images: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return apply_augment(images, boxes, self.sample(len(images)))


def apply_augment(images: torch.Tensor, boxes: torch.Tensor, params: AugmentParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``params`` to a batch.

    Args:
        images: ``(N, 3, H, W)`` uint8 in [0, 255] or float in [0, 1], on any device.
        boxes: ``(N, 4)`` xyxy normalized to [0, 1], on the same device.
        params: from :meth:`BatchAugment.sample` (moved to the images' device here).

    Returns:
        ``(images, boxes)``: float32 ``(N, 3, H, W)`` in [0, 1] and ``(N, 4)`` normalized xyxy.
    """
    device = images.device
    x = F.to_dtype(images, torch.float32, scale=True)
    flip = params.flip.to(device, non_blocking=True)
    x = torch.where(flip[:, None, None, None], F.horizontal_flip(x), x)
    mirrored = F.horizontal_flip_bounding_boxes(boxes, format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=(1, 1))
    boxes = torch.where(flip[:, None], mirrored, boxes)
    factors = params.factors.to(device, non_blocking=True)
    for op in params.order:
        f = factors[:, JITTER_OPS.index(op), None, None, None]
        if op == "brightness":
            x = (x * f).clamp_(0.0, 1.0)
        elif op == "contrast":
            grey_mean = F.rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
            x = torch.lerp(grey_mean, x, f).clamp_(0.0, 1.0)
        else:  # saturation
            x = torch.lerp(F.rgb_to_grayscale(x), x, f).clamp_(0.0, 1.0)
    return x, boxes
