"""Train-time augmentation of whole batches on the training device: the report's
RandomHorizontalFlip (p=0.5, box moved with the image) and ColorJitter, with random parameters
drawn per image, and optionally a box-aware random scale + translation (zoom in or out, shift).

Why not ``torchvision.transforms.v2`` on the batch: a v2 transform called on an ``(N, 3, H, W)``
tensor draws *one* set of random parameters for the whole batch (every image flipped or none,
one brightness factor for all). Per-image randomness over a batch is what this module adds; the
image operations themselves are torchvision's:

* flip: :func:`torchvision.transforms.v2.functional.horizontal_flip` for the pixels and
  :func:`localizer.boxes.hflip_boxes` (torchvision's ``horizontal_flip_bounding_boxes``) for the boxes
  (normalized xyxy, so the canvas is 1 x 1: xmin' = 1 - xmax, xmax' = 1 - xmin), selected per image;
* ColorJitter: the blends of torchvision's ``adjust_brightness`` (image x f), ``adjust_contrast``
  (blend with the mean of the grey image) and ``adjust_saturation`` (blend with the grey image,
  ITU-R 601-2 luma via :func:`~torchvision.transforms.v2.functional.rgb_to_grayscale`), with a factor
  tensor of shape ``(N, 1, 1, 1)`` instead of one float. Factors are drawn uniformly from
  ``[max(0, 1 - s), 1 + s]`` as ``v2.ColorJitter`` does; the order of the three changes is drawn
  once per batch (v2 draws it once per call, i.e. per image in a per-item pipeline).

* scale + translation (``affine_p`` > 0): with probability ``affine_p`` per image,
  :func:`torchvision.transforms.v2.functional.affine` with a scale drawn from :data:`AFFINE_SCALE`
  and a shift of up to :data:`AFFINE_TRANSLATE` of the side on each axis (as ``v2.RandomAffine``
  draws them), applied to the image and to its box as a ``tv_tensors.BoundingBoxes``; the box is
  clamped to the canvas, and an image whose box would lose more than half of its area (the animal
  pushed out of the frame) keeps its original framing. The model must then find the animal instead
  of learning the data set's framing (lion photos are framed tightly: the median box covers 65 %
  of the image). Done image by image (one affine each), before the flip.

Why not ``kornia.augmentation`` (``AugmentationSequential(..., data_keys=["input", "bbox_xyxy"])``),
which draws per-image parameters too: this module is faster on the CPU and its boxes follow the pixels
more closely (kornia flips boxes as pixel indices, ``W - 1 - x``, not as continuous coordinates,
``W - x``); ``benchmarks/augment.py`` measures both (docs/numerics.md).

The random numbers are drawn on the CPU from torch's global generator (seeded per epoch by
:func:`localizer.engine.training.train`), so a seed gives the same augmentation on any device, and drawing
them never waits for the GPU. The work is about a dozen element-wise passes over the batch (on 2 CPU
cores, a few per cent of a ResNet18 training step; on a GPU, memory-bound kernels over 25 MB
for 32 images of 256 px), instead of per-image transforms in loader workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from localizer.boxes import empty_boxes, hflip_boxes
from localizer.data.transforms import COLOR_JITTER, FLIP_P

#: The order of the jitter columns in :class:`AugmentParams` ``factors``.
JITTER_OPS = ("brightness", "contrast", "saturation")

#: Range of the random scale (below 1: zoom out, the animal smaller, the border filled with grey)
#: and largest shift (share of the side) of the box-aware affine augmentation.
AFFINE_SCALE = (0.75, 1.15)
AFFINE_TRANSLATE = 0.1
#: Grey (in [0, 1]) that fills the border a zoom-out or shift uncovers.
AFFINE_FILL = 0.5
#: An affine-augmented box must keep at least this share of its area inside the canvas.
AFFINE_MIN_VISIBLE = 0.5


@dataclass
class AugmentParams:
    """Random parameters for one batch of ``N`` images.

    Attributes:
        flip: ``(N,)`` bool, True where the image is mirrored.
        factors: ``(N, 3)`` float32 brightness, contrast and saturation factors (1 = unchanged).
        order: the jitter operations in the order applied (a permutation of :data:`JITTER_OPS`,
            only those with a non-zero strength).
        affine: ``(N,)`` bool, True where the image is scaled and shifted.
        scale: ``(N,)`` float32 scale factors (1 where ``affine`` is False).
        shift: ``(N, 2)`` float32 shifts ``(dx, dy)`` as shares of the width and height.
    """

    flip: torch.Tensor
    factors: torch.Tensor
    order: tuple[str, ...]
    affine: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    shift: torch.Tensor | None = None


class BatchAugment:
    """Per-image random flip + ColorJitter of a whole batch, on the batch's device.

    Args:
        flip_p: probability of mirroring each image (the report's 0.5).
        affine_p: probability of scaling and shifting each image (0: never, the report's recipe).
        color_jitter: strengths ``{"brightness", "contrast", "saturation"}`` (default
            :data:`localizer.data.transforms.COLOR_JITTER`: 0.2 each). ``hue`` must be 0 or absent: a hue
            shift (RGB -> HSV -> RGB) costs several times the other three together and says little
            about where an animal is, so the training recipe leaves it out.

    Raises:
        ValueError: ``flip_p`` or ``affine_p`` outside [0, 1], a negative strength, or a non-zero hue.

    Call with uint8 or float images ``(N, 3, H, W)`` and ``(N, 4)`` xyxy boxes normalized to [0, 1] (or
    ``(N, B, 4)``: every animal of each image, the primary one first, rows of zeros as padding);
    returns float32 images in [0, 1] (same device and shape; normalize them next) and the boxes.
    """

    def __init__(self, flip_p: float = FLIP_P, color_jitter: dict | None = None, affine_p: float = 0.0):
        jitter = dict(COLOR_JITTER if color_jitter is None else color_jitter)
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {flip_p}")
        if not 0.0 <= affine_p <= 1.0:
            raise ValueError(f"affine_p must be in [0, 1], got {affine_p}")
        if jitter.pop("hue", 0.0):
            raise ValueError("BatchAugment has no hue shift; set the hue strength to 0")
        unknown = set(jitter) - set(JITTER_OPS)
        if unknown:
            raise ValueError(f"unknown ColorJitter strengths {sorted(unknown)}; expected {JITTER_OPS}")
        if any(value < 0 for value in jitter.values()):
            raise ValueError(f"ColorJitter strengths must be >= 0, got {jitter}")
        self.flip_p = flip_p
        self.affine_p = affine_p
        self.strengths = tuple(float(jitter.get(op, 0.0)) for op in JITTER_OPS)

    def __repr__(self) -> str:
        jitter = ", ".join(f"{op}={s}" for op, s in zip(JITTER_OPS, self.strengths))
        return f"BatchAugment(flip_p={self.flip_p}, {jitter}, affine_p={self.affine_p})"

    def sample(self, n: int) -> AugmentParams:
        """Draw the parameters for ``n`` images from torch's global (CPU) generator."""
        flip = torch.rand(n) < self.flip_p
        low = torch.tensor([max(0.0, 1.0 - s) for s in self.strengths])
        high = torch.tensor([1.0 + s for s in self.strengths])
        factors = low + (high - low) * torch.rand(n, len(JITTER_OPS))
        order = tuple(JITTER_OPS[i] for i in torch.randperm(len(JITTER_OPS)).tolist()
                      if self.strengths[i] > 0)
        if not self.affine_p:  # draws nothing more: the report's recipe keeps its random stream
            return AugmentParams(flip, factors, order)
        affine = torch.rand(n) < self.affine_p
        scale = AFFINE_SCALE[0] + (AFFINE_SCALE[1] - AFFINE_SCALE[0]) * torch.rand(n)
        shift = AFFINE_TRANSLATE * (2 * torch.rand(n, 2) - 1)
        return AugmentParams(flip, factors, order, affine, torch.where(affine, scale, 1.0),
                             torch.where(affine[:, None], shift, 0.0))

    def __call__(self, images: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return apply_augment(images, boxes, self.sample(len(images)))


def apply_augment(images: torch.Tensor, boxes: torch.Tensor,
                  params: AugmentParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``params`` to a batch.

    Args:
        images: ``(N, 3, H, W)`` uint8 in [0, 255] or float in [0, 1], on any device.
        boxes: ``(N, 4)`` xyxy normalized to [0, 1], on the same device; or ``(N, B, 4)``, every animal
            of each image with the primary one first and rows of zeros as padding (an animal the scale +
            shift pushes out of the frame becomes such a row).
        params: from :meth:`BatchAugment.sample` (moved to the images' device here).

    Returns:
        ``(images, boxes)``: float32 ``(N, 3, H, W)`` in [0, 1] and the boxes, normalized xyxy, of the
        same shape as given.
    """
    device = images.device
    x = F.to_dtype(images, torch.float32, scale=True)
    if params.affine is not None and params.affine.any():
        x, boxes = _scale_and_shift(x, boxes, params)
    flip = params.flip.to(device, non_blocking=True)
    x = torch.where(flip[:, None, None, None], F.horizontal_flip(x), x)
    flipped = hflip_boxes(boxes)
    if boxes.dim() == 3:  # padding stays zeros (a flipped empty box would be (1, 0, 1, 0))
        flipped = torch.where(empty_boxes(boxes)[..., None], boxes, flipped)
    boxes = torch.where(flip.view(-1, *[1] * (boxes.dim() - 1)), flipped, boxes)
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


def _scale_and_shift(images: torch.Tensor, boxes: torch.Tensor, params: AugmentParams):
    """The box-aware affine of :class:`AugmentParams` on the chosen images of a float batch; boxes
    normalized xyxy ``(N, 4)`` or ``(N, B, 4)`` (primary first, zeros as padding). See the module
    docstring (clamping, the fallback); with ``(N, B, 4)``, the primary box decides the fallback and
    another animal that keeps less than :data:`AFFINE_MIN_VISIBLE` of its area becomes padding."""
    images, boxes = images.clone(), boxes.clone()
    single = boxes.dim() == 2
    if single:
        boxes = boxes[:, None]
    height, width = images.shape[-2:]
    scale = boxes.new_tensor([width, height, width, height])
    for i in params.affine.nonzero().flatten().tolist():
        # clamping_mode=None: the moved boxes as they are, to measure how much of each stays on the canvas
        pixel_boxes = tv_tensors.BoundingBoxes(boxes[i] * scale, format="XYXY", canvas_size=(height, width),
                                               clamping_mode=None)
        affine = dict(angle=0.0, translate=[float(params.shift[i, 0]) * width, float(params.shift[i, 1]) * height],
                      scale=float(params.scale[i]), shear=[0.0, 0.0])
        moved = F.affine(pixel_boxes, **affine)
        clamped = F.clamp_bounding_boxes(moved, clamping_mode="hard").as_subclass(torch.Tensor)
        area = (moved[:, 2:] - moved[:, :2]).prod(dim=-1)
        visible = (clamped[:, 2:] - clamped[:, :2]).clamp_min(0).prod(dim=-1) >= AFFINE_MIN_VISIBLE * area
        if not visible[0]:
            continue  # the animal would leave the frame: keep this image as it is
        images[i] = F.affine(images[i], **affine, interpolation=F.InterpolationMode.BILINEAR, fill=AFFINE_FILL)
        keep = visible & ~empty_boxes(boxes[i])
        boxes[i] = torch.where(keep[:, None], clamped / scale, torch.zeros_like(clamped))
    return images, (boxes[:, 0] if single else boxes)
