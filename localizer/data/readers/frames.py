"""Where an annotation's boxes lie on the photo as displayed: the one place where the frame an
annotation was drawn on (VOC ``<size>``, COCO ``width/height``, a trimap's size) meets the decoded,
EXIF-oriented photo."""

from __future__ import annotations

import numpy as np

from localizer.data.imageio import DecodedFrame, exif_transpose_boxes
from localizer.data.readers.base import PIXELS, Annotation, AnnotationError

#: Pixel boxes whose coordinates all lie within [-1, 1.5] (-1: VOC's 1-based ``0.1`` is the continuous
#: ``-0.9``) on a photo whose sides are at least :data:`NORMALIZED_MIN_SIDE` pixels are almost surely
#: normalized coordinates (fractions of the photo's size) written into a format that takes pixels: a
#: box of a pixel or two in the photo's corner is no animal anyone annotates.
NORMALIZED_LIMIT, NORMALIZED_MIN_SIDE = 1.5, 16


def check_units(annotation: Annotation, width: int, height: int) -> None:
    """Refuse pixel boxes that are normalized coordinates written by mistake (see :data:`NORMALIZED_LIMIT`).
    An annotation whose frame is itself that small (a COCO ``width: 1``) is consistent and is left to the
    frame's scaling.

    Raises:
        AnnotationError: ``normalized-coordinates``, with the diagnosis and the conversion.
    """
    boxes = annotation.boxes
    if annotation.written_in != PIXELS or len(boxes) == 0 or min(width, height) < NORMALIZED_MIN_SIDE:
        return
    if annotation.frame is not None and max(annotation.frame) <= NORMALIZED_LIMIT:
        return
    if boxes.min() >= -1 and boxes.max() <= NORMALIZED_LIMIT:
        raise AnnotationError(
            "normalized-coordinates",
            f"every coordinate lies within [0, {NORMALIZED_LIMIT:g}] on a {width}x{height} photo, in a format "
            f"that takes pixels: these look like normalized coordinates (fractions of the photo's width and "
            f"height); write pixels (x * {width}, y * {height}) or export in a normalized format (YOLO)")


def boxes_in_image(annotation: Annotation, width: int, height: int, decoded: DecodedFrame | None = None) -> np.ndarray:
    """Put an annotation's boxes on the photo as displayed (``width`` x ``height`` pixels).

    The one place where the annotation's frame meets the decoded photo, for every format that
    states its frame (:attr:`Annotation.frame`):

    1. no frame (YOLO, CSV): the boxes are already in the displayed photo's pixels;
    2. the photo has an EXIF orientation (2-8, ``decoded.orientation``) and the frame is the size
       of the stored, un-rotated pixels (``decoded.raw_size``): the annotation was drawn on the
       stored pixels, as tools that ignore EXIF do (COCO has such photos), and the boxes are moved
       with the pixels (:func:`localizer.data.imageio.exif_transpose_boxes`). For orientations 2-4 the
       stored and the displayed size are the same, and the stored frame is assumed;
    3. the frame is the displayed size: the boxes stay;
    4. another size of the same aspect orientation (both landscape, both portrait, or one square):
       the image was resized after annotating, and each axis is scaled;
    5. otherwise (a landscape frame for a portrait photo or the reverse, not explained by the EXIF
       orientation): the boxes would be stretched across a rotation, so the image is refused.

    Args:
        annotation: boxes in their frame.
        width, height: the photo as displayed (after EXIF orientation), in pixels.
        decoded: what :func:`localizer.data.imageio.load_rgb` decoded (:func:`localizer.data.imageio.decoded_frame`);
            None: stored as displayed (orientation 1).

    Returns:
        ``(K, 4)`` float64 pixel xyxy on the displayed photo (not clipped).

    Boxes in pixels that are normalized coordinates written by mistake are refused first (:func:`check_units`).

    Raises:
        AnnotationError: ``annotation-size-mismatch`` (case 5) or ``normalized-coordinates``.
    """
    check_units(annotation, width, height)
    boxes = annotation.boxes
    if annotation.frame is None or len(boxes) == 0:
        return boxes
    decoded = decoded or DecodedFrame(1, (width, height))
    frame_w, frame_h = (float(v) for v in annotation.frame)
    raw_w, raw_h = decoded.raw_size
    if decoded.orientation != 1 and (frame_w, frame_h) == (raw_w, raw_h):
        return exif_transpose_boxes(boxes, decoded.orientation, raw_w, raw_h)
    if (frame_w, frame_h) == (width, height):
        return boxes
    if (frame_w - frame_h) * (width - height) >= 0:
        return boxes * np.array([width / frame_w, height / frame_h] * 2)
    stored = f", stored {raw_w}x{raw_h} with EXIF orientation {decoded.orientation}" if decoded.orientation != 1 else ""
    raise AnnotationError(
        "annotation-size-mismatch",
        f"the annotation was drawn on a {frame_w:g}x{frame_h:g} image but the photo is {width}x{height} as "
        f"displayed{stored}: {'landscape' if frame_w > frame_h else 'portrait'} against "
        f"{'landscape' if width > height else 'portrait'}, so its boxes cannot be placed without stretching",
    )
