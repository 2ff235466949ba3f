"""Dataset readers: turn a folder of annotated photos into a list of :class:`Item` and parse each
item's boxes, with their classes, into an :class:`Annotation`.

Formats (``FORMATS``):

* ``yolo``: ``images/`` beside ``labels/`` (possibly under split folders such as ``train/``); one
  ``labels/NAME.txt`` per ``images/NAME.jpg`` with lines ``class cx cy w h`` normalized to [0, 1].
  A polygon line ``class x1 y1 x2 y2 ...`` (YOLO segmentation export) gives the polygon's extent.
  The classes are integer ids.
* ``voc``: images and PASCAL VOC XML files (``<object><bndbox>``) with the same stem anywhere under
  the folder (e.g. ``JPEGImages/`` + ``Annotations/``). VOC pixel indices are 1-based and inclusive,
  so ``xmin = 93, xmax = 460`` becomes the continuous box ``(92, 460)``. The classes are the
  ``<object><name>``; the frame the boxes were drawn on is ``<size>``.
* ``oxford-pets``: the Oxford-IIIT Pet layout (``images/``, ``annotations/trimaps/``,
  ``annotations/xmls/``). Box ``animal`` (default): the tight box around trimap pixels that are not
  background (trimap value 2). Box ``head``: the head box of the VOC XML (only some images have one).
  One animal per photo: no class filter.
* ``coco``: a COCO instances JSON (``images``, ``annotations`` with ``bbox = [x, y, w, h]`` in
  pixels) beside its images (or in ``annotations/`` with images in ``images/`` or beside it). The
  classes are the names of ``categories``; the frame is ``images[].width/height``. Crowd annotations
  (``iscrowd: 1``, one region around a group of objects) are left out.
* ``csv``: a CSV with a header row naming ``filename,xmin,ymin,xmax,ymax`` (pixels, continuous; other
  columns are ignored, an optional ``class`` column gives the classes); several rows for one file are
  several boxes. Files are relative to the CSV's folder (or its ``images/``). Spreadsheet exports
  read too: UTF-8 with or without a byte-order mark, any line ends, a comma, semicolon, tab or bar
  as delimiter (found by :class:`csv.Sniffer`) and, when the delimiter is not a comma, decimal commas
  (``10,5``).

The Oxford-IIIT Pet layout is detected before VOC because it also holds VOC XML files.

Boxes are put on the photo as displayed in one place, :func:`boxes_in_image`: an annotation that
states the size of its frame (VOC, COCO, trimaps) and was drawn on the stored, un-rotated pixels of
an EXIF-rotated photo is rotated with the pixels (:func:`localizer.imageio.exif_transpose_boxes`).
The class filter (:func:`parse_classes`, :meth:`Annotation.select`) is applied by
:func:`localizer.validation.check_item`, before the primary (largest) box is chosen.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from .boxes import cxcywh_to_xyxy, denormalize_boxes, xywh_to_xyxy
from .errors import ConfigError, DataError
from .imageio import DecodedFrame, exif_transpose_boxes, is_image_file

FORMATS = ("yolo", "voc", "oxford-pets", "coco", "csv")
OXFORD_BOXES = ("animal", "head")

#: Trimap value for background in the Oxford-IIIT Pet annotations (1 pet, 2 background, 3 border).
OXFORD_TRIMAP_BACKGROUND = 2

#: The animal classes of PASCAL VOC (Everingham et al., IJCV 2010: the 20 VOC classes) ...
VOC_ANIMALS = frozenset({"bird", "cat", "cow", "dog", "horse", "sheep"})
#: ... and of COCO (Lin et al., ECCV 2014: the "animal" supercategory of the 80 detection classes).
COCO_ANIMALS = frozenset({"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"})
#: Named sets of class names accepted by :func:`parse_classes` (case-insensitive), usable for VOC and
#: COCO names (and a CSV class column), not for YOLO ids.
CLASS_PRESETS: dict[str, frozenset[str]] = {"animals": VOC_ANIMALS | COCO_ANIMALS}

#: Label kinds (:attr:`Reader.label_kind`): integer class ids (YOLO) or class names (VOC, COCO, CSV).
LABEL_IDS, LABEL_NAMES = "ids", "names"


class DataFormatError(ConfigError):
    """The folder is not in a format localizer reads (or not in the one asked for), or a parameter
    does not fit the format (e.g. a class filter on a format without classes)."""


class AnnotationError(DataError):
    """An annotation that cannot be used (``reason``: ``missing-annotation``, ``unparsable-annotation``,
    ``no-box``, ``annotation-size-mismatch``, ...)."""


@dataclass(frozen=True)
class Item:
    """One image found in a dataset folder, with what is needed to read its boxes.

    ``annotation`` is the annotation file (None when there is none); ``payload`` holds what was
    already read from a shared annotation file (COCO, CSV).
    """

    image: Path
    annotation: Path | None
    payload: Any = field(default=None, compare=False)


@dataclass(frozen=True, eq=False)
class Annotation:
    """The boxes of one image as its annotation gives them.

    Attributes:
        boxes: ``(K, 4)`` float64 pixel xyxy (continuous, see :mod:`localizer.boxes`) in the frame
            the annotation was drawn on (K may be 0).
        labels: the K class labels as written (YOLO class id such as ``"0"``, VOC ``<name>``, COCO
            category name, CSV ``class``), or None for a format without classes.
        frame: ``(width, height)`` in pixels of the image the boxes were drawn on, as the annotation
            states it (VOC ``<size>``, COCO ``images[].width/height``, the trimap's size); None when
            the boxes are already in the pixels of the photo as displayed (YOLO, CSV).
    """

    boxes: np.ndarray
    labels: tuple[str, ...] | None = None
    frame: tuple[float, float] | None = None

    def __post_init__(self):
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        object.__setattr__(self, "boxes", boxes)
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
            if len(self.labels) != len(boxes):
                raise ValueError(f"{len(self.labels)} labels for {len(boxes)} boxes")

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, classes: frozenset[str] | None) -> Annotation:
        """The boxes whose label is one of ``classes`` (keys of :func:`class_key`, as
        :func:`parse_classes` returns them); all boxes when ``classes`` is None.

        Raises:
            DataFormatError: a class filter on an annotation without labels.
        """
        if classes is None:
            return self
        if self.labels is None:
            raise DataFormatError("this format has no classes to filter on; leave the class filter out")
        keep = np.array([class_key(label) in classes for label in self.labels], dtype=bool)
        kept = tuple(label for label, k in zip(self.labels, keep) if k)
        return Annotation(self.boxes[keep], kept, self.frame)

    def describe_labels(self) -> str:
        """The labels with their counts for messages, e.g. ``person x2, car`` (``no label`` if none)."""
        counts = Counter(label or "(no name)" for label in (self.labels or ()))
        return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in counts.items()) or "no label"


@dataclass(frozen=True)
class Reader:
    """A dataset format.

    Attributes:
        name: the format's name (one of :data:`FORMATS`).
        list_items: ``list_items(root) -> list[Item]``.
        parse: ``parse(item, width, height) -> Annotation`` for the photo ``width`` x ``height``
            pixels as displayed (YOLO's normalized boxes are scaled to it); raises
            :class:`AnnotationError`.
        label_kind: ``label_kind(root)``: :data:`LABEL_IDS`, :data:`LABEL_NAMES` or None (no classes)
            for the dataset folder ``root``.
    """

    name: str
    list_items: Callable[[Path], list[Item]]
    parse: Callable[[Item, int, int], Annotation]
    label_kind: Callable[[Path], str | None] = lambda root: None


# ----------------------------------------------------------------------------------------- classes
def class_key(label: str) -> str:
    """The form in which labels and class filters are compared: whitespace trimmed, lower case, and
    an integer id without leading zeros (``" Cat "`` -> ``"cat"``, ``"02"`` -> ``"2"``)."""
    text = str(label).strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text.lower()


def _class_tokens(classes: str | int | Iterable[str]) -> list[str]:
    if isinstance(classes, (str, int)):  # an int: a single YOLO id from a JSON config value
        text = str(classes)
    elif isinstance(classes, Iterable):
        text = ",".join(str(c) for c in classes)
    else:
        raise DataFormatError(f"classes {classes!r}: expected comma-separated class names or ids as text")
    return [token.strip() for token in text.split(",")]


def parse_classes(classes: str | int | Iterable[str] | None) -> frozenset[str] | None:
    """Parse a class filter: comma-separated class names (VOC ``<object><name>``, COCO category
    names, a CSV ``class`` column), YOLO class ids (``"0,2"``) or presets (:data:`CLASS_PRESETS`,
    e.g. ``"animals"``, mixable with names: ``"animals,lion"``).

    Names match case-insensitively with whitespace trimmed; ids as integers (see :func:`class_key`).
    Whether the classes fit a format is checked by :func:`resolve_classes`.

    Args:
        classes: the filter text, an iterable of names (a parsed filter parses to itself), an int
            (one YOLO id, as a JSON config value), or None.

    Returns:
        The set of :func:`class_key` keys, presets expanded, or None (no filter: every box) for None.

    Raises:
        DataFormatError: an empty filter, an empty entry (``"cat,,dog"``) or a value of another type.
    """
    if classes is None:
        return None
    tokens = _class_tokens(classes)
    if not any(tokens) or not all(tokens):
        raise DataFormatError(f"classes {','.join(tokens)!r}: expected comma-separated class names or ids, "
                              f"such as 'cat,dog', 'animals' or '0,2', with no empty entry")
    keys: set[str] = set()
    for token in tokens:
        key = class_key(token)
        keys |= CLASS_PRESETS.get(key, {key})
    return frozenset(keys)


def resolve_classes(classes: str | int | Iterable[str] | None, reader: Reader, root: Path) -> frozenset[str] | None:
    """Parse a class filter (:func:`parse_classes`) and check that it fits the format of ``root``.

    Raises:
        DataFormatError: a bad filter; a filter on a format without classes (oxford-pets trimap or
            head boxes, a CSV without a ``class`` column); names or presets on YOLO (its labels carry
            class ids); ids on a format with class names.
    """
    wanted = parse_classes(classes)
    if wanted is None:
        return None
    tokens = _class_tokens(classes)
    text = ",".join(tokens)
    kind = reader.label_kind(root)
    if kind is None:
        why = {
            "oxford-pets": "the Oxford-IIIT Pet boxes (trimap or head box) have no class to filter on: "
                           "one cat or dog per photo",
            "csv": f"the CSV has no {CSV_CLASS_COLUMN} column to filter on",
        }.get(reader.name, f"{reader.name} annotations have no classes")
        raise DataFormatError(f"classes {text!r}: {why}; leave the class filter out")
    ids = [t for t in tokens if t.isascii() and t.isdigit()]
    names = [t for t in tokens if t not in ids]
    if kind == LABEL_IDS and names:
        presets = [n for n in names if class_key(n) in CLASS_PRESETS]
        note = f" ({', '.join(presets)} names VOC and COCO classes)" if presets else ""
        verb = "is not a class id" if len(names) == 1 else "are not class ids"
        raise DataFormatError(f"classes {text!r}: {', '.join(names)} {verb}{note}; YOLO labels carry class ids: "
                              f"pass ids such as --classes 0")
    if kind == LABEL_NAMES and ids:
        raise DataFormatError(f"classes {text!r}: {reader.name} labels carry class names, not ids: pass names "
                              f"such as --classes cat,dog or a preset ({', '.join(CLASS_PRESETS)})")
    return wanted


# ------------------------------------------------------------------------------------------ frames
def boxes_in_image(annotation: Annotation, width: int, height: int, decoded: DecodedFrame | None = None) -> np.ndarray:
    """Put an annotation's boxes on the photo as displayed (``width`` x ``height`` pixels).

    The one place where the annotation's frame meets the decoded photo, for every format that
    states its frame (:attr:`Annotation.frame`):

    1. no frame (YOLO, CSV): the boxes are already in the displayed photo's pixels;
    2. the photo has an EXIF orientation (2-8, ``decoded.orientation``) and the frame is the size
       of the stored, un-rotated pixels (``decoded.raw_size``): the annotation was drawn on the
       stored pixels, as tools that ignore EXIF do (COCO has such photos), and the boxes are moved
       with the pixels (:func:`localizer.imageio.exif_transpose_boxes`). For orientations 2-4 the
       stored and the displayed size are the same, and the stored frame is assumed;
    3. the frame is the displayed size: the boxes stay;
    4. another size of the same aspect orientation (both landscape, both portrait, or one square):
       the image was resized after annotating, and each axis is scaled;
    5. otherwise (a landscape frame for a portrait photo or the reverse, not explained by the EXIF
       orientation): the boxes would be stretched across a rotation, so the image is refused.

    Args:
        annotation: boxes in their frame.
        width, height: the photo as displayed (after EXIF orientation), in pixels.
        decoded: what :func:`localizer.imageio.load_rgb` decoded (:func:`localizer.imageio.decoded_frame`);
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


def _frame(width: Any, height: Any) -> tuple[float, float] | None:
    """``(width, height)`` when both are positive finite numbers, else None (frame unknown)."""
    try:
        w, h = float(width), float(height)
    except (TypeError, ValueError):
        return None
    return (w, h) if math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0 else None


# ----------------------------------------------------------------------------------------- helpers
def _images_under(folder: Path) -> list[Path]:
    # A dangling symlink or a folder with an image name is listed too, so that check-data reports it
    # (``unreadable``) instead of dropping it silently; FIFOs and devices are left out (opening blocks).
    return sorted(p for p in folder.rglob("*")
                  if is_image_file(p) and (p.is_file() or p.is_dir() or not p.exists()))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise AnnotationError("missing-annotation", f"no annotation file {path.name}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError("unparsable-annotation", f"cannot read {path.name}: {exc}") from exc


def _float(text: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError) as exc:
        raise AnnotationError("unparsable-annotation", f"{where}: {text!r} is not a number") from exc
    if not math.isfinite(value):
        raise AnnotationError("nan-box", f"{where}: coordinate {text!r} is NaN or infinite")
    return value


# -------------------------------------------------------------------------------------------- yolo
def _yolo_items(root: Path) -> list[Item]:
    items = []
    for images_dir in sorted(p for p in root.rglob("images") if p.is_dir()):
        labels_dir = images_dir.parent / "labels"
        if not labels_dir.is_dir():
            continue
        for image in _images_under(images_dir):
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
        values = [_float(v, where) for v in fields[1:]]
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


def _yolo_parse(item: Item, width: int, height: int) -> Annotation:
    return yolo_annotation(_read_text(item.annotation), width, height, item.annotation.name)


# --------------------------------------------------------------------------------------------- voc
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
        tree = ET.fromstring(_read_text(path))
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
            coords.append(_float(node.text, f"{path.name} <{tag}>"))
        boxes.append([coords[0] - 1, coords[1] - 1, coords[2], coords[3]])
        labels.append((obj.findtext("name") or "").strip())
    size = tree.find("size")
    frame = None if size is None else _frame(size.findtext("width"), size.findtext("height"))
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


def _voc_items(root: Path) -> list[Item]:
    xml_by_stem = {p.stem: p for p in sorted(root.rglob("*.xml"))}
    return [Item(image, xml_by_stem.get(image.stem)) for image in _images_under(root)]


def _voc_parse(item: Item, width: int, height: int) -> Annotation:
    if item.annotation is None:
        raise AnnotationError("missing-annotation", f"no XML file named {item.image.stem}.xml")
    return voc_annotation(item.annotation)


# ------------------------------------------------------------------------------------- oxford-pets
def _oxford_items(root: Path, box: str) -> list[Item]:
    if box not in OXFORD_BOXES:
        raise ConfigError(f"oxford-pets box must be one of {OXFORD_BOXES}, got {box!r}")
    folder = root / "annotations" / ("trimaps" if box == "animal" else "xmls")
    suffix = ".png" if box == "animal" else ".xml"
    return [Item(image, folder / f"{image.stem}{suffix}") for image in _images_under(root / "images")]


def trimap_annotation(path: Path) -> Annotation:
    """The tight box around the non-background pixels of an Oxford-IIIT trimap, in the trimap's pixels.

    Background is value 2 (1 = pet, 3 = border; Parkhi et al., CVPR 2012, dataset README). The box
    of pixels in columns c0..c1 and rows r0..r1 is ``(c0, r0, c1 + 1, r1 + 1)`` (continuous).

    Returns:
        ``boxes`` ``(1, 4)`` pixel xyxy, ``labels`` None (no classes), ``frame`` the trimap's
        ``(width, height)``.

    Raises:
        AnnotationError: ``missing-annotation``, ``unparsable-annotation`` (not a readable PNG) or
            ``no-box`` (the trimap is all background).
    """
    try:
        with Image.open(path) as img:
            trimap = np.asarray(img)
    except FileNotFoundError as exc:
        raise AnnotationError("missing-annotation", f"no trimap {path.name}") from exc
    except OSError as exc:
        raise AnnotationError("unparsable-annotation", f"{path.name}: {exc}") from exc
    if trimap.ndim == 3:
        trimap = trimap[..., 0]
    rows = np.flatnonzero((trimap != OXFORD_TRIMAP_BACKGROUND).any(axis=1))
    cols = np.flatnonzero((trimap != OXFORD_TRIMAP_BACKGROUND).any(axis=0))
    if len(rows) == 0:
        raise AnnotationError("no-box", f"trimap {path.name} is all background")
    box = np.array([[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]], dtype=np.float64)
    mask_h, mask_w = trimap.shape
    return Annotation(box, None, (float(mask_w), float(mask_h)))


def trimap_box(path: Path, width: int, height: int) -> np.ndarray:
    """Tight pixel xyxy box ``(1, 4)`` around the non-background pixels of an Oxford-IIIT trimap
    (:func:`trimap_annotation`), put on the ``width`` x ``height`` image (no EXIF orientation) by
    :func:`boxes_in_image`: a trimap of another size with the same aspect orientation is scaled.

    Raises:
        AnnotationError: ``missing-annotation``, ``unparsable-annotation`` (not a readable PNG),
            ``no-box`` (the trimap is all background) or ``annotation-size-mismatch``.
    """
    return boxes_in_image(trimap_annotation(path), width, height)


def _oxford_parse(item: Item, width: int, height: int) -> Annotation:
    if item.annotation.suffix == ".png":
        return trimap_annotation(item.annotation)
    if not item.annotation.is_file():
        raise AnnotationError("missing-annotation", f"no head box XML {item.annotation.name}")
    return voc_annotation(item.annotation)


# -------------------------------------------------------------------------------------------- coco
@dataclass(frozen=True)
class _CocoImage:
    """What the COCO JSON says about one image: its annotations, its frame and the category names."""

    annotations: list
    frame: tuple[float, float] | None
    categories: dict


def _find_coco_json(root: Path) -> Path | None:
    for path in sorted(root.glob("*.json")) + sorted(root.glob("annotations/*.json")):
        try:
            with path.open(encoding="utf-8") as f:
                head = f.read(1_000_000)
        except (OSError, UnicodeDecodeError):
            continue
        if '"images"' in head and '"annotations"' in head:
            return path
    return None


def _coco_data(root: Path) -> tuple[Path, dict, list, dict]:
    """The COCO JSON of ``root``: ``(path, images by id, annotations, category names by id)``."""
    path = _find_coco_json(root)
    if path is None:
        raise DataFormatError(f"{root}: no COCO instances JSON (with 'images' and 'annotations')")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = {img["id"]: (img["file_name"], img) for img in data["images"]}
        categories = {cat["id"]: str(cat.get("name", cat["id"])) for cat in data.get("categories") or []}
        annotations = data.get("annotations") or []
        if not all(isinstance(ann, dict) for ann in annotations):
            raise TypeError("an annotation is not an object")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataFormatError(f"{path}: not a COCO instances JSON ({exc})") from exc
    return path, images, annotations, categories


def _coco_items(root: Path) -> list[Item]:
    path, images, annotations, categories = _coco_data(root)
    by_image: dict[Any, list] = defaultdict(list)
    for ann in annotations:
        by_image[ann.get("image_id")].append(ann)
    bases = [path.parent, path.parent / "images", path.parent.parent, path.parent.parent / "images"]
    items = []
    for image_id, (name, img) in images.items():
        candidates = [base / name for base in bases]
        image = next((c for c in candidates if c.is_file()), candidates[0])
        frame = _frame(img.get("width"), img.get("height"))
        items.append(Item(image, path, payload=_CocoImage(by_image.get(image_id, []), frame, categories)))
    return sorted(items, key=lambda it: str(it.image))


def _coco_parse(item: Item, width: int, height: int) -> Annotation:
    rows, labels, crowd = [], [], 0
    for ann in item.payload.annotations:
        if ann.get("iscrowd", 0) == 1:  # one region around a group of objects, not one animal
            crowd += 1
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise AnnotationError("unparsable-annotation", f"COCO bbox {bbox!r} is not [x, y, w, h]")
        rows.append([_float(v, f"{item.annotation.name} bbox") for v in bbox])
        category = ann.get("category_id")
        labels.append("" if category is None else item.payload.categories.get(category, str(category)))
    if crowd and not rows:
        raise AnnotationError("no-box", f"only crowd boxes were found ({crowd} with iscrowd: 1, each around a "
                                        f"group of objects); no box of a single one")
    boxes = xywh_to_xyxy(np.array(rows, dtype=np.float64).reshape(-1, 4))
    return Annotation(boxes, tuple(labels), item.payload.frame)


# --------------------------------------------------------------------------------------------- csv
CSV_COLUMNS = ("filename", "xmin", "ymin", "xmax", "ymax")
#: Optional CSV column with the class name of each box.
CSV_CLASS_COLUMN = "class"
#: Delimiters a CSV may use; spreadsheets in locales with a decimal comma export semicolons.
CSV_DELIMITERS = ",;\t|"
_CSV_SAMPLE_CHARS = 64 * 1024
#: A header cell naming a box coordinate in another CSV dialect (x1, y2, x, width, x_center, ...).
_COORDINATE_NAME = re.compile(
    r"((bbox|box)[_ ]?)?(x|y|w|h|cx|cy|[xy][_ ]?(min|max|center|centre)|[xy][0-9]|width|height|left|top|right|bottom)")
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d*,\d+\s*")


@dataclass(frozen=True)
class _CsvLayout:
    """A CSV in localizer's layout: its dialect and the index of each column read."""

    path: Path
    dialect: Any
    columns: dict

    @property
    def has_classes(self) -> bool:
        return CSV_CLASS_COLUMN in self.columns


@dataclass(frozen=True)
class _CsvBoxes:
    """The rows of one image: ``(line number, [xmin, ymin, xmax, ymax] text or None when the row is
    short, class)``; ``has_classes``: the CSV has a class column."""

    rows: list
    has_classes: bool


def _csv_sample(path: Path) -> str:
    """The first whole lines (up to 64 Ki characters) of a UTF-8 CSV (byte-order mark dropped).

    Raises:
        OSError, UnicodeDecodeError.
    """
    with path.open(encoding="utf-8-sig", newline="") as f:
        sample = f.read(_CSV_SAMPLE_CHARS)
        more = f.read(1)
    cut = max(sample.rfind("\n"), sample.rfind("\r"))
    return sample[:cut + 1] if more and cut > 0 else sample


def _csv_dialects(sample: str) -> list:
    """Dialects to try: the one :class:`csv.Sniffer` finds, then Excel's with each delimiter."""
    dialects = []
    try:
        dialects.append(csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS))
    except csv.Error:
        pass
    return dialects + [type("delimited", (csv.excel,), {"delimiter": d}) for d in CSV_DELIMITERS]


def _first_row(sample: str, dialect) -> list[str]:
    """The first row with a non-blank cell, cells stripped."""
    for row in csv.reader(io.StringIO(sample), dialect):
        if any(cell.strip() for cell in row):
            return [cell.strip() for cell in row]
    return []


def _csv_layout(path: Path) -> _CsvLayout | None:
    """``path`` read as a CSV whose header row names :data:`CSV_COLUMNS` (any order and case), or None."""
    try:
        sample = _csv_sample(path)
    except (OSError, UnicodeDecodeError):
        return None
    for dialect in _csv_dialects(sample):
        header = [cell.lower() for cell in _first_row(sample, dialect)]
        if all(name in header for name in CSV_COLUMNS):
            names = CSV_COLUMNS + ((CSV_CLASS_COLUMN,) if CSV_CLASS_COLUMN in header else ())
            return _CsvLayout(path, dialect, {name: header.index(name) for name in names})
    return None


def _find_csv(root: Path) -> _CsvLayout | None:
    return next(filter(None, (_csv_layout(path) for path in sorted(root.glob("*.csv")))), None)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text.replace(",", ".") if _DECIMAL_COMMA.fullmatch(text) else text))
    except ValueError:
        return False


def _foreign_csv(path: Path) -> str | None:
    """Why ``path`` is not read although it looks like boxes (another dialect, no header row, not
    UTF-8), or None when it does not look like boxes."""
    try:
        sample = _csv_sample(path)
    except UnicodeDecodeError as exc:
        return (f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}); localizer reads CSV files "
                f"in UTF-8: save it as 'CSV UTF-8'")
    except OSError:
        return None
    first = max((_first_row(sample, d) for d in _csv_dialects(sample)), key=len)
    if len(first) >= 4 and sum(_is_number(cell) for cell in first) >= 4:
        what, fix = f"no header row; the first row is {', '.join(first)}", "add the header row"
    elif sum(bool(_COORDINATE_NAME.fullmatch(cell.lower())) for cell in first) >= 4:
        what, fix = f"columns {', '.join(first)}", "rename or convert the columns"
    else:
        return None
    names = {cell.lower() for cell in first}
    size = "; a top-left corner x, y with a width and height gives xmax = x + width, ymax = y + height" \
        if {"width", "height"} <= names or {"w", "h"} <= names else ""
    return (f"{path.name} looks like boxes in another dialect ({what}); localizer reads a header row "
            f"{','.join(CSV_COLUMNS)} (pixels: the top-left and bottom-right corners; an optional "
            f"{CSV_CLASS_COLUMN} column; delimited by commas, semicolons or tabs){size}: {fix}")


def _csv_hint(root: Path) -> str | None:
    """What :func:`_foreign_csv` says about the first CSV of ``root`` that looks like boxes."""
    return next(filter(None, (_foreign_csv(path) for path in sorted(root.glob("*.csv")))), None)


def _csv_items(root: Path) -> list[Item]:
    layout = _find_csv(root)
    if layout is None:
        hint = _csv_hint(root)
        raise DataFormatError(f"{root}: {hint}" if hint else
                              f"{root}: no CSV with a header row {','.join(CSV_COLUMNS)}")
    columns = [layout.columns[name] for name in CSV_COLUMNS]
    decimal_comma = layout.dialect.delimiter != ","
    rows: dict[str, list] = defaultdict(list)
    try:
        with layout.path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, layout.dialect)
            header = True
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if header:
                    header = False
                    continue
                cells = [row[i] if i < len(row) else None for i in columns]
                values = None if None in cells else [
                    v.replace(",", ".") if decimal_comma and _DECIMAL_COMMA.fullmatch(v) else v for v in cells[1:]]
                label = ""
                if layout.has_classes and layout.columns[CSV_CLASS_COLUMN] < len(row):
                    label = row[layout.columns[CSV_CLASS_COLUMN]].strip()
                rows[(cells[0] or "").strip()].append((reader.line_num, values, label))
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{layout.path}: not UTF-8 text ({exc.reason}); save it as 'CSV UTF-8'") from exc
    except csv.Error as exc:
        raise DataFormatError(f"{layout.path}: not a readable CSV ({exc})") from exc
    base = layout.path.parent / "images" if (layout.path.parent / "images").is_dir() else layout.path.parent
    items = [Item(base / name, layout.path, payload=_CsvBoxes(boxes, layout.has_classes))
             for name, boxes in rows.items()]
    return sorted(items, key=lambda it: str(it.image))


def _csv_parse(item: Item, width: int, height: int) -> Annotation:
    boxes, labels = [], []
    for number, values, label in item.payload.rows:
        where = f"{item.annotation.name} line {number}"
        if values is None:
            raise AnnotationError("unparsable-annotation", f"{where}: the row has no cell for every column of "
                                                           f"{','.join(CSV_COLUMNS)}")
        boxes.append([_float(v, where) for v in values])
        labels.append(label)
    labels = tuple(labels) if item.payload.has_classes else None
    return Annotation(np.array(boxes, dtype=np.float64).reshape(-1, 4), labels)


def _csv_label_kind(root: Path) -> str | None:
    layout = _find_csv(root)
    return LABEL_NAMES if layout is not None and layout.has_classes else None


# ------------------------------------------------------------------------------------------ public
def get_reader(fmt: str, oxford_box: str = "animal") -> Reader:
    """The :class:`Reader` for format ``fmt`` (one of :data:`FORMATS`).

    Raises:
        DataFormatError: unknown format.
    """
    readers = {
        "yolo": Reader("yolo", _yolo_items, _yolo_parse, lambda root: LABEL_IDS),
        "voc": Reader("voc", _voc_items, _voc_parse, lambda root: LABEL_NAMES),
        "oxford-pets": Reader("oxford-pets", lambda root: _oxford_items(root, oxford_box), _oxford_parse),
        "coco": Reader("coco", _coco_items, _coco_parse, lambda root: LABEL_NAMES),
        "csv": Reader("csv", _csv_items, _csv_parse, _csv_label_kind),
    }
    if fmt not in readers:
        raise DataFormatError(f"unknown format {fmt!r}; formats read: {', '.join(FORMATS)} (or 'auto')")
    return readers[fmt]


def detect_format(root: Path | str) -> str:
    """Guess the format of dataset folder ``root`` from its layout.

    Order: ``oxford-pets`` (``annotations/trimaps/``), ``yolo`` (``images/`` beside ``labels/``),
    ``coco`` (a JSON with images and annotations), ``csv`` (a CSV whose header names
    :data:`CSV_COLUMNS`), ``voc`` (XML files).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DataFormatError: no known layout found. When a CSV looks like boxes in another dialect
            (other column names such as ``x1,y1,x2,y2`` or ``x,y,width,height``, no header row) or
            is not UTF-8, the message says so by name; otherwise it lists the formats and their layouts.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    if (root / "annotations" / "trimaps").is_dir():
        return "oxford-pets"
    if any((p.parent / "labels").is_dir() for p in root.rglob("images") if p.is_dir()):
        return "yolo"
    if _find_coco_json(root) is not None:
        return "coco"
    if _find_csv(root) is not None:
        return "csv"
    if next(root.rglob("*.xml"), None) is not None:
        return "voc"
    hint = _csv_hint(root)
    if hint:
        raise DataFormatError(f"{root}: {hint}")
    raise DataFormatError(f"{root}: no known dataset layout. {FORMAT_HELP}")


FORMAT_HELP = (
    "Formats read: yolo (images/ + labels/*.txt), voc (images + PASCAL VOC .xml), "
    "oxford-pets (images/ + annotations/trimaps/ + annotations/xmls/), coco (instances .json beside "
    "the images), csv (header filename,xmin,ymin,xmax,ymax in pixels, optionally class)."
)
