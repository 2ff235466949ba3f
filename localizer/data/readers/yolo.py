"""The ``yolo`` layout: ``images/`` beside ``labels/`` (possibly under split folders such as
``train/``); one ``labels/NAME.txt`` per ``images/NAME.jpg`` with lines ``class cx cy w h``
normalized to [0, 1]. A polygon line ``class x1 y1 x2 y2 ...`` (YOLO segmentation export) gives the
polygon's extent. The classes are integer ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from localizer.boxes import cxcywh_to_xyxy, denormalize_boxes
from localizer.data.readers.base import LABEL_IDS, Annotation, AnnotationError, Item, Reader, images_under, parse_number, read_text


def _items(root: Path) -> list[Item]:
    items = []
    for images_dir in sorted(p for p in root.rglob("images") if p.is_dir()):
        labels_dir = images_dir.parent / "labels"
        if not labels_dir.is_dir():
            continue
        for image in images_under(images_dir):
            label = labels_dir / image.relative_to(images_dir).with_suffix(".txt")
            items.append(Item(image, label))
    return items


def yolo_annotation(text: str, width: int, height: int, name: str = "label") -> Annotation:
    """Parse YOLO label text into an :class:`Annotation` on a ``width`` x ``height`` image.

    Each line is ``class cx cy w h`` (normalized cxcywh) or ``class x1 y1 x2 y2 ...`` (a normalized
    polygon, at least 3 points, whose extent is taken). Blank lines are ignored. The labels are the
    class fields as written (e.g. ``"0"``); there is no frame (normalized boxes fit any size).

    Returns:
        ``boxes`` ``(K, 4)`` pixel xyxy, ``labels`` the K class ids, ``frame`` None.

    Raises:
        AnnotationError: ``unparsable-annotation`` (wrong field count, not a number) or ``nan-box``.
    """
    boxes, labels = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{name} line {number}"
        values = [parse_number(v, where) for v in fields[1:]]
        if len(values) == 4:
            boxes.append(cxcywh_to_xyxy(np.array(values))[0])
        elif len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = values[0::2], values[1::2]
            boxes.append([min(xs), min(ys), max(xs), max(ys)])
        else:
            raise AnnotationError(
                "unparsable-annotation",
                f"{where}: expected 'class cx cy w h' or a polygon, got {len(fields)} fields",
            )
        labels.append(fields[0])
    normalized = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return Annotation(denormalize_boxes(normalized, width, height), tuple(labels))


def parse_yolo_label(text: str, width: int, height: int, name: str = "label") -> np.ndarray:
    """Parse YOLO label text into ``(K, 4)`` pixel xyxy boxes for a ``width`` x ``height`` image
    (the boxes of :func:`yolo_annotation`).

    Raises:
        AnnotationError: ``unparsable-annotation`` (wrong field count, not a number) or ``nan-box``.
    """
    return yolo_annotation(text, width, height, name).boxes


def _parse(item: Item, width: int, height: int) -> Annotation:
    return yolo_annotation(read_text(item.annotation), width, height, item.annotation.name)


def is_yolo(root: Path) -> bool:
    """True when ``root`` holds an ``images/`` folder beside a ``labels/`` folder (at any depth)."""
    return any((p.parent / "labels").is_dir() for p in root.rglob("images") if p.is_dir())


READER = Reader("yolo", _items, _parse, lambda root: LABEL_IDS)
