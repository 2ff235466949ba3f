"""One photo checked: decode it, parse its annotation, keep the boxes of the chosen classes, put
them on the photo as displayed, check them and choose the primary box (:func:`check_item`, which
:func:`localizer.data.validation.scan_dataset` runs on every photo found)."""

from __future__ import annotations

import numpy as np

from localizer.boxes import BOX_TOLERANCE, BoxError, check_box, primary_box
from localizer.data.duplicates import image_hash
from localizer.data.imageio import DecodedFrame, ImageLoadError, decoded_frame, load_rgb
from localizer.data.readers import Annotation, AnnotationError, Item, Reader, boxes_in_image, parse_classes


def check_item(
    item: Item,
    reader: Reader,
    max_pixels: int | None = None,
    tolerance: float = BOX_TOLERANCE,
    classes: str | frozenset[str] | None = None,
    keep_boxes: bool = False,
) -> dict:
    """Decode one item's image, parse its annotation, keep the boxes of the chosen classes, put them
    on the photo as displayed and check them.

    The steps: :func:`localizer.data.imageio.load_rgb` (EXIF-oriented; :func:`~localizer.data.imageio.decoded_frame`
    gives the orientation and the stored size); ``reader.parse``; the class filter
    (:meth:`localizer.data.readers.Annotation.select`, the one place it is applied); the frame mapping
    (:func:`localizer.data.readers.boxes_in_image`: boxes drawn on the stored frame of an EXIF-rotated
    photo are rotated with it); :func:`localizer.boxes.check_box` on every box; the largest is the
    primary box.

    Args:
        item, reader: the image and its format.
        max_pixels: decompression-bomb limit (see :func:`localizer.data.imageio.load_rgb`).
        tolerance: share of the image side a box may exceed the image by and be clipped.
        classes: None (every box) or a class filter (text as :func:`localizer.data.readers.parse_classes`
            reads it, or the set it returns); boxes of other classes are dropped before the primary
            box is chosen.

    Returns:
        A dict with ``status`` (``ok``/``skipped``), ``code``, ``reason`` and, when ok, ``width``,
        ``height`` (pixels, as displayed), the primary box ``xmin..ymax`` (pixel xyxy, continuous,
        clipped to the image; the largest box, among those not marked VOC difficult where there is
        one, see :func:`_primary_index`), ``note`` (what the difficult rule did, else ``""``), ``n_boxes``
        (boxes of the chosen classes; COCO crowd boxes are not counted), ``label`` (the primary box's class
        as written, ``""`` for a format without classes) and ``dhash``; with ``keep_boxes``, also ``boxes``:
        all ``(n_boxes, 4)`` checked pixel xyxy boxes (for error analysis of photos with several animals).
        Never raises for bad data: an image whose boxes are all of other classes is ``no-box`` with a
        detail naming the classes.

    Raises:
        localizer.data.readers.DataFormatError: a malformed ``classes``, or a class filter on a format
            without classes.
    """
    wanted = parse_classes(classes)
    try:
        width, height, decoded, dhash = _decode(item, max_pixels)
        chosen = _chosen(reader.parse(item, width, height), wanted)
        boxes = boxes_in_image(chosen, width, height, decoded)
        checked = np.stack([check_box(b, width, height, tolerance) for b in boxes])
    except (ImageLoadError, AnnotationError, BoxError) as exc:
        return {"status": "skipped", "code": exc.reason, "reason": f"{exc.reason}: {exc.detail}"}
    index, note = _primary_index(checked, chosen.difficult)
    xmin, ymin, xmax, ymax = checked[index]
    return {
        "status": "ok", "code": "", "reason": "", "note": note, "width": width, "height": height,
        "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax, "n_boxes": len(boxes),
        "label": chosen.labels[index] if chosen.labels is not None else "", "dhash": dhash,
        **({"boxes": checked} if keep_boxes else {}),
    }


def _decode(item: Item, max_pixels: int | None) -> tuple[int, int, DecodedFrame, str]:
    """``(width, height, decoded frame, dHash)`` of the item's photo as displayed.

    Raises:
        ImageLoadError: the photo cannot be decoded, or the file the annotation names is not there
            (:attr:`Item.problem`, raised before decoding).
        AnnotationError: another :attr:`Item.problem` found while listing (raised after decoding,
            so a broken photo is reported as broken).
    """
    if isinstance(item.problem, ImageLoadError):
        raise item.problem
    with load_rgb(item.image, max_pixels=max_pixels) as img:
        width, height = img.size
        decoded = decoded_frame(img)
        dhash = image_hash(img)
    if item.problem is not None:
        raise item.problem
    return width, height, decoded, dhash


def _chosen(annotation: Annotation, wanted: frozenset[str] | None) -> Annotation:
    """The boxes of the classes ``wanted`` (all when None).

    Raises:
        BoxError: ``no-box``: the annotation has no box, or none of those classes.
    """
    if len(annotation) == 0:
        raise BoxError("no-box", "the annotation has no box")
    chosen = annotation.select(wanted)
    if len(chosen) == 0:
        raise BoxError("no-box", f"no box of the classes {', '.join(sorted(wanted))} "
                                 f"(the annotation has {annotation.describe_labels()})")
    return chosen


def _primary_index(boxes: np.ndarray, difficult: tuple[bool, ...] | None) -> tuple[int, str]:
    """The row of the primary box among ``(K, 4)`` checked pixel xyxy ``boxes``, and a note.

    The largest box (:func:`localizer.boxes.primary_box`, ties: the first). Objects marked VOC
    ``<difficult>1</difficult>`` are ignored by the VOC devkit's evaluation (Everingham et al.,
    IJCV 2010, section 4), so when some boxes are difficult and some are not, the largest of the
    others is chosen and the note says so; when all are difficult, the largest of all.
    """
    flags = np.zeros(len(boxes), dtype=bool) if difficult is None else np.asarray(difficult, dtype=bool)
    keep = ~flags if 0 < flags.sum() < len(flags) else np.ones(len(boxes), dtype=bool)
    primary = primary_box(boxes[keep])
    index = int(np.flatnonzero((boxes == primary).all(axis=1) & keep)[0])  # the first largest, as primary_box
    if keep.all() and flags.any():
        return index, f"all {len(boxes)} boxes are marked difficult; the largest is the primary box"
    if not keep.all():
        return index, (f"primary box chosen among the {int(keep.sum())} of {len(boxes)} boxes not marked "
                       f"difficult (the VOC devkit leaves difficult objects out of evaluation)")
    return index, ""
