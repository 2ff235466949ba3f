"""Bounding-box conventions and small box utilities.

Conventions used across localizer
---------------------------------
* **xyxy**: ``(xmin, ymin, xmax, ymax)``.
* **Pixel coordinates are continuous**: the left edge of column 0 is x = 0 and the right edge of the
  last column of a W-wide image is x = W. A box that covers columns 92..459 therefore has
  ``xmin = 92, xmax = 460``; its width is ``xmax - xmin`` = 368 pixels.
* **Normalized coordinates** divide pixel x by the image width and y by the height, so a box lies in
  [0, 1]. A resize of the whole image (aspect change included) leaves normalized boxes unchanged.
* **Primary box**: the largest box of an image (by area), taken as "the primary animal".

Conversions between formats use :func:`torchvision.ops.box_convert`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.ops import box_area, box_convert
from torchvision.transforms.v2 import functional as F

from localizer.errors import DataError

#: A box may exceed the image by this share of the image side (per edge) and still be kept, clipped
#: to the image. Exporters often round coordinates (e.g. YOLO ``cx + w/2 = 1.0004``); a box further
#: outside than this is a broken annotation and the image is skipped.
BOX_TOLERANCE = 0.02
#: The manifest column with every box of a photo (:func:`boxes_text`), written by a scan with ``all_boxes``
#: (:func:`localizer.data.validation.scan_dataset`) for a recipe that trains on every annotated animal.
ALL_BOXES_COLUMN = "boxes"


class BoxError(DataError):
    """A box that cannot be used (``reason``: ``no-box``, ``nan-box``, ``empty-box``, ``box-outside-image``)."""


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Convert ``(K, 4)`` cxcywh boxes to ``(K, 4)`` xyxy boxes, same units (pixel or normalized)."""
    tensor = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).reshape(-1, 4)
    return box_convert(tensor, "cxcywh", "xyxy").numpy()


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Convert ``(K, 4)`` xywh boxes (COCO: top-left corner, width, height) to ``(K, 4)`` xyxy."""
    tensor = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).reshape(-1, 4)
    return box_convert(tensor, "xywh", "xyxy").numpy()


def _xyxy_scale(width, height) -> np.ndarray:
    """``(..., 4)`` factors ``(width, height, width, height)`` for scalar or per-box ``(N,)`` sizes."""
    width, height = np.asarray(width, dtype=np.float64), np.asarray(height, dtype=np.float64)
    return np.stack([width, height, width, height], axis=-1)


def normalize_boxes(boxes: np.ndarray, width, height) -> np.ndarray:
    """Pixel xyxy ``(..., 4)`` to normalized xyxy ``(..., 4)``: divide x by ``width``, y by ``height``
    (numbers, or ``(N,)`` arrays with one image size per box)."""
    return np.asarray(boxes, dtype=np.float64) / _xyxy_scale(width, height)


def denormalize_boxes(boxes: np.ndarray, width, height) -> np.ndarray:
    """Normalized xyxy ``(..., 4)`` to pixel xyxy ``(..., 4)`` for images ``width`` x ``height`` px
    (numbers, or ``(N,)`` arrays with one image size per box)."""
    return np.asarray(boxes, dtype=np.float64) * _xyxy_scale(width, height)


def primary_box(boxes: np.ndarray) -> np.ndarray:
    """Return the largest of ``(K, 4)`` xyxy boxes as a ``(4,)`` array (ties: the first one).

    Raises:
        BoxError: ``no-box`` when ``K == 0``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        raise BoxError("no-box", "the annotation has no box")
    areas = box_area(torch.as_tensor(boxes)).numpy()
    return boxes[int(np.argmax(areas))]


def check_box(box: np.ndarray, width: int, height: int, tolerance: float = BOX_TOLERANCE) -> np.ndarray:
    """Validate one pixel xyxy box against a ``width`` x ``height`` image and clip it to the image.

    Args:
        box: ``(4,)`` pixel xyxy, continuous coordinates.
        width, height: image size in pixels, as displayed (after EXIF orientation).
        tolerance: how far an edge may lie outside the image, as a share of the image side
            (default :data:`BOX_TOLERANCE`); such a box is clipped and kept.

    Returns:
        ``(4,)`` float64 pixel xyxy inside ``[0, width] x [0, height]``.

    Raises:
        BoxError: ``nan-box`` (a coordinate is NaN or infinite), ``empty-box`` (zero or negative width
            or height, before or after clipping), ``box-outside-image`` (an edge further outside
            than the tolerance).
    """
    box = np.asarray(box, dtype=np.float64).reshape(4)
    if not all(math.isfinite(v) for v in box):
        raise BoxError("nan-box", f"box {box.tolist()} has a NaN or infinite coordinate")
    xmin, ymin, xmax, ymax = box
    if xmax <= xmin or ymax <= ymin:
        raise BoxError("empty-box", f"box {_fmt(box)} has zero or negative width or height")
    tol_x, tol_y = tolerance * width, tolerance * height
    if xmin < -tol_x or ymin < -tol_y or xmax > width + tol_x or ymax > height + tol_y:
        raise BoxError(
            "box-outside-image",
            f"box {_fmt(box)} lies outside the {width}x{height} image by more than "
            f"{tolerance:.0%} of its side",
        )
    clipped = np.array([max(xmin, 0.0), max(ymin, 0.0), min(xmax, width), min(ymax, height)])
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise BoxError("empty-box", f"box {_fmt(box)} is empty once clipped to the image")
    return clipped


def _fmt(box: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


#: The columns of a table (scan table, manifest) that hold the primary box in pixel xyxy.
BOX_COLUMNS = ["xmin", "ymin", "xmax", "ymax"]


def normalized_boxes(table) -> np.ndarray:
    """The primary boxes of a table (columns :data:`BOX_COLUMNS`, ``width``, ``height``) as ``(N, 4)``
    float64 xyxy normalized by each image's width and height."""
    return normalize_boxes(table[BOX_COLUMNS].to_numpy(), table["width"].to_numpy(), table["height"].to_numpy())


def hflip_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Mirror normalized xyxy boxes ``(N, 4)`` left-right: ``(1 - xmax, ymin, 1 - xmin, ymax)``
    (torchvision's box flip on a 1 x 1 canvas)."""
    return F.horizontal_flip_bounding_boxes(boxes, format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=(1, 1))


def empty_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """``(...)`` bool, True where an xyxy box ``(..., 4)`` has no area (``xmax <= xmin`` or ``ymax <= ymin``):
    the rows of zeros that pad the training targets ``(N, B, 4)`` (:func:`localizer.data.datasets.box_targets`)."""
    return (boxes[..., 2] <= boxes[..., 0]) | (boxes[..., 3] <= boxes[..., 1])


def boxes_text(boxes: np.ndarray) -> str:
    """Every box of a photo as text for a table cell: pixel xyxy ``(K, 4)`` -> ``"x1 y1 x2 y2;..."``,
    largest first (the primary box first; ties in the annotation's order), 2 decimals.
    :func:`parse_boxes_text` reads it back."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    areas = box_area(torch.as_tensor(boxes)).numpy()  # as primary_box measures them
    return ";".join(" ".join(f"{v:.2f}" for v in box) for box in boxes[np.argsort(-areas, kind="stable")])


def parse_boxes_text(text: str) -> np.ndarray:
    """The boxes ``(K, 4)`` float64 pixel xyxy of a :func:`boxes_text` cell, in its order.

    Raises:
        ValueError: text that is not ``;``-separated groups of four numbers.
    """
    rows = [part.split() for part in str(text).split(";") if part.strip()]
    if not rows or any(len(row) != 4 for row in rows):
        raise ValueError(f"not a list of boxes 'x1 y1 x2 y2;...': {text!r}")
    return np.array(rows, dtype=np.float64)
