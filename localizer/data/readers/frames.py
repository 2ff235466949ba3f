"""Where an annotation's boxes lie on the photo as displayed: the one place where the frame an
annotation was drawn on (VOC ``<size>``, COCO ``width/height``, a trimap's size) meets the decoded,
EXIF-oriented photo."""

from __future__ import annotations

import numpy as np

from localizer.data.imageio import DecodedFrame, exif_transpose_boxes
from localizer.data.readers.base import Annotation, AnnotationError


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

    Raises:
        AnnotationError: ``annotation-size-mismatch`` (case 5).
    """
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
