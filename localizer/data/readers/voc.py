"""The ``voc`` layout: images and PASCAL VOC XML files (``<object><bndbox>``) with the same stem
anywhere under the folder (e.g. ``JPEGImages/`` + ``Annotations/``). VOC pixel indices are 1-based
and inclusive, so ``xmin = 93, xmax = 460`` becomes the continuous box ``(92, 460)``. The classes are
the ``<object><name>``; the frame the boxes were drawn on is ``<size>``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from localizer.data.readers.base import (
    LABEL_NAMES,
    Annotation,
    AnnotationError,
    Item,
    Reader,
    frame_size,
    images_under,
    parse_number,
    read_text,
)
from localizer.data.readers.frames import boxes_in_image


def voc_annotation(path: Path) -> Annotation:
    """Read the ``<object>`` boxes of a PASCAL VOC XML file, in the frame the XML states.

    VOC coordinates are 1-based inclusive pixel indices (VOC devkit, Everingham et al. 2010), so the
    continuous box is ``(xmin - 1, ymin - 1, xmax, ymax)``. An ``<object>`` without ``<bndbox>`` is
    left out.

    Returns:
        ``boxes`` ``(K, 4)`` pixel xyxy in the XML's frame, ``labels`` the ``<name>`` of each object
        (``""`` when missing), ``frame`` the ``<size>`` ``(width, height)`` (None when missing or not
        positive).

    Raises:
        AnnotationError: ``missing-annotation``, ``unparsable-annotation`` or ``nan-box``.
    """
    try:
        tree = ET.fromstring(read_text(path))
    except ET.ParseError as exc:
        raise AnnotationError("unparsable-annotation", f"{path.name}: invalid XML ({exc})") from exc
    boxes, labels = [], []
    for obj in tree.iter("object"):
        bndbox = obj.find("bndbox")
        if bndbox is None:
            continue
        coords = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            node = bndbox.find(tag)
            if node is None:
                raise AnnotationError("unparsable-annotation", f"{path.name}: <bndbox> has no <{tag}>")
            coords.append(parse_number(node.text, f"{path.name} <{tag}>"))
        boxes.append([coords[0] - 1, coords[1] - 1, coords[2], coords[3]])
        labels.append((obj.findtext("name") or "").strip())
    size = tree.find("size")
    frame = None if size is None else frame_size(size.findtext("width"), size.findtext("height"))
    return Annotation(np.array(boxes, dtype=np.float64).reshape(-1, 4), tuple(labels), frame)


def parse_voc_xml(path: Path, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Parse the ``<object><bndbox>`` boxes of a PASCAL VOC XML file into ``(K, 4)`` pixel xyxy.

    The boxes of :func:`voc_annotation`; given the decoded image's ``width`` x ``height`` (no EXIF
    orientation), put on it by :func:`boxes_in_image`: a ``<size>`` of another size with the same
    aspect orientation scales the boxes to the image.

    Raises:
        AnnotationError: ``missing-annotation``, ``unparsable-annotation``, ``nan-box`` or
            ``annotation-size-mismatch`` (a landscape ``<size>`` for a portrait image or the reverse).
    """
    annotation = voc_annotation(path)
    return boxes_in_image(annotation, width, height) if width and height else annotation.boxes


def _items(root: Path) -> list[Item]:
    xml_by_stem = {p.stem: p for p in sorted(root.rglob("*.xml"))}
    return [Item(image, xml_by_stem.get(image.stem)) for image in images_under(root)]


def _parse(item: Item, width: int, height: int) -> Annotation:
    if item.annotation is None:
        raise AnnotationError("missing-annotation", f"no XML file named {item.image.stem}.xml")
    return voc_annotation(item.annotation)


READER = Reader("voc", _items, _parse, lambda root: LABEL_NAMES)
