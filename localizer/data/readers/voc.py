"""The ``voc`` layout: images and PASCAL VOC XML files (``<object><bndbox>``), each XML beside its
image (LabelImg, makesense.ai, CVAT's "PASCAL VOC" export in one folder) or in a folder of XMLs
parallel to the images' (``JPEGImages/`` + ``Annotations/``). VOC pixel indices are 1-based and
inclusive, so ``xmin = 93, xmax = 460`` becomes the continuous box ``(92, 460)``. The classes are the
``<object><name>``; the frame the boxes were drawn on is ``<size>``; ``<difficult>1</difficult>``
marks objects the VOC devkit leaves out of evaluation (:attr:`Annotation.difficult`). roLabelImg's
rotated boxes (``<robndbox>`` with ``cx, cy, w, h`` in pixels and ``angle`` in radians) are read as their
axis-aligned extent, as YOLO's rotated (OBB) lines are, and compete for the primary box like any other.

An XML belongs to exactly one image, found by its relative path (:func:`pair_xmls`): ``cat/1.xml``
is ``cat/1.jpg``'s, never ``dog/1.jpg``'s."""

from __future__ import annotations

import math
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
    continuous box is ``(xmin - 1, ymin - 1, xmax, ymax)``. A ``<robndbox>`` gives its extent
    (:func:`rotated_extent`). An ``<object>`` without either is left out.

    Returns:
        ``boxes`` ``(K, 4)`` pixel xyxy in the XML's frame, ``labels`` the ``<name>`` of each object
        (``""`` when missing), ``frame`` the ``<size>`` ``(width, height)`` (None when missing or not
        positive), ``difficult`` the K ``<difficult>`` flags (``1`` or ``true``; missing is 0).

    Raises:
        AnnotationError: ``missing-annotation``, ``unparsable-annotation`` or ``nan-box``.
    """
    try:
        tree = ET.fromstring(read_text(path))
    except ET.ParseError as exc:
        raise AnnotationError("unparsable-annotation", f"{path.name}: invalid XML ({exc})") from exc
    boxes, labels, difficult = [], [], []
    for obj in tree.iter("object"):
        if obj.find("bndbox") is not None:
            xmin, ymin, xmax, ymax = _numbers(obj.find("bndbox"), ("xmin", "ymin", "xmax", "ymax"), path.name)
            boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        elif obj.find("robndbox") is not None:
            boxes.append(rotated_extent(*_numbers(obj.find("robndbox"), ("cx", "cy", "w", "h", "angle"), path.name)))
        else:
            continue
        labels.append((obj.findtext("name") or "").strip())
        difficult.append((obj.findtext("difficult") or "0").strip() in ("1", "true", "True"))
    size = tree.find("size")
    frame = None if size is None else frame_size(size.findtext("width"), size.findtext("height"))
    return Annotation(np.array(boxes, dtype=np.float64).reshape(-1, 4), tuple(labels), frame, tuple(difficult))


def _numbers(node: ET.Element, tags: tuple[str, ...], name: str) -> list[float]:
    """The numbers of the child elements ``tags`` of a ``<bndbox>`` or ``<robndbox>``.

    Raises:
        AnnotationError: ``unparsable-annotation`` (a tag missing, not a number) or ``nan-box``.
    """
    values = []
    for tag in tags:
        child = node.find(tag)
        if child is None:
            raise AnnotationError("unparsable-annotation", f"{name}: <{node.tag}> has no <{tag}>")
        values.append(parse_number(child.text, f"{name} <{tag}>"))
    return values


def rotated_extent(cx: float, cy: float, w: float, h: float, angle: float) -> list[float]:
    """The axis-aligned extent ``[xmin, ymin, xmax, ymax]`` of a ``w`` x ``h`` box centred at ``(cx, cy)``
    and turned by ``angle`` radians (roLabelImg's ``<robndbox>``): half-extents ``(|w cos a| + |h sin a|)
    / 2`` and ``(|w sin a| + |h cos a|) / 2``."""
    cos, sin = abs(math.cos(angle)), abs(math.sin(angle))
    half_w, half_h = (w * cos + h * sin) / 2, (w * sin + h * cos) / 2
    return [cx - half_w, cy - half_h, cx + half_w, cy + half_h]


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


def _mirrors(image: Path, xml: Path, root: Path, image_folders: set[Path]) -> bool:
    """True when ``xml`` lies where ``image`` does with one folder swapped for a folder without
    images (``VOC/JPEGImages/a.jpg`` and ``VOC/Annotations/a.xml``)."""
    a, b = image.relative_to(root).parts[:-1], xml.relative_to(root).parts[:-1]
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return len(a) == len(b) and len(differ) == 1 and root.joinpath(*b[:differ[0] + 1]) not in image_folders


def pair_xmls(root: Path, images: list[Path], xmls: list[Path]) -> list[Item]:
    """One :class:`Item` per image, each XML given to at most one image.

    Rules, in order: (1) the XML beside the image with its stem (``cat/1.jpg`` -> ``cat/1.xml``);
    (2) for an image left, the XMLs left with its stem, those in a parallel folder first
    (:func:`_mirrors`): exactly one, wanted by no other image, is the image's. Several XMLs for one
    image, or one XML for several images, are ``ambiguous-annotation`` naming them; none is
    ``missing-annotation``, naming the XML of that stem that belongs to another image, if any.
    """
    show = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    beside = {x.with_suffix(""): x for x in xmls}
    owner = {}
    for image in images:
        owner.setdefault(beside.get(image.with_suffix("")), []).append(image)
    owner.pop(None, None)
    left: dict[str, list[Path]] = {}
    for xml in xmls:
        if xml not in owner:
            left.setdefault(xml.stem, []).append(xml)
    image_folders = {folder for image in images for folder in image.parents}
    wanted = {}
    for image in images:
        if beside.get(image.with_suffix("")) is None:
            stems = left.get(image.stem, [])
            parallel = [x for x in stems if _mirrors(image, x, root, image_folders)]
            wanted[image] = parallel or stems
    wanting: dict[Path, list[Path]] = {}
    for image, xmls_of in wanted.items():
        for xml in xmls_of:
            wanting.setdefault(xml, []).append(image)
    items = []
    for image in images:
        xml = beside.get(image.with_suffix(""))
        claims = (owner[xml] if xml is not None
                  else [image] + [i for x in wanted[image] for i in wanting[x] if i != image])
        if xml is None and len(wanted[image]) == 1 and len(claims) == 1:
            xml = wanted[image][0]
        if xml is not None and len(claims) == 1:
            items.append(Item(image, xml))
            continue
        named = (wanted.get(image) or []) if xml is None else [xml]
        if not named:
            taken = [show(x) for x, imgs in owner.items() if x.stem == image.stem]
            detail = f"no XML file named {image.stem}.xml" + (
                f" for it ({', '.join(taken)} belongs to another image beside it)" if taken else "")
            items.append(Item(image, None, problem=AnnotationError("missing-annotation", detail)))
            continue
        detail = (f"the XML files {', '.join(map(show, named))} all fit it" if len(named) > 1 else
                  f"{show(named[0])} fits {' and '.join(sorted(map(show, set(claims))))}")
        items.append(Item(image, None, problem=AnnotationError(
            "ambiguous-annotation", f"{detail}; an annotation must belong to exactly one image")))
    return items


def _orphans(root: Path, images: list[Path], xmls: list[Path]) -> list[Item]:
    """The VOC XMLs (root ``<annotation>``) whose stem no image has: labels without a photo, each naming
    the ``<filename>`` it was drawn on."""
    stems = {image.stem for image in images}
    orphans = []
    for xml in xmls:
        if xml.stem in stems:
            continue
        try:
            tree = ET.fromstring(xml.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ET.ParseError):
            continue
        if tree.tag == "annotation":
            named = (tree.findtext("filename") or "").strip()
            names = f" (it names {named})" if named else ""
            orphans.append(Item.orphan(xml, f"no photo for {xml.relative_to(root).as_posix()}: no image named "
                                            f"{xml.stem}.* under the folder{names}"))
    return orphans


def _items(root: Path) -> list[Item]:
    images, xmls = images_under(root), sorted(root.rglob("*.xml"))
    return pair_xmls(root, images, xmls) + _orphans(root, images, xmls)


def _parse(item: Item, width: int, height: int) -> Annotation:
    if item.annotation is None:
        raise AnnotationError("missing-annotation", f"no XML file named {item.image.stem}.xml")
    return voc_annotation(item.annotation)


READER = Reader("voc", _items, _parse, lambda root: LABEL_NAMES)
