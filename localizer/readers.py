"""Dataset readers: turn a folder of annotated photos into a list of :class:`Item` and parse each
item's boxes into pixel xyxy.

Formats (``FORMATS``):

* ``yolo``: ``images/`` beside ``labels/`` (possibly under split folders such as ``train/``); one
  ``labels/NAME.txt`` per ``images/NAME.jpg`` with lines ``class cx cy w h`` normalized to [0, 1].
  A polygon line ``class x1 y1 x2 y2 ...`` (YOLO segmentation export) gives the polygon's extent.
* ``voc``: images and PASCAL VOC XML files (``<object><bndbox>``) with the same stem anywhere under
  the folder (e.g. ``JPEGImages/`` + ``Annotations/``). VOC pixel indices are 1-based and inclusive,
  so ``xmin = 93, xmax = 460`` becomes the continuous box ``(92, 460)``.
* ``oxford-pets``: the Oxford-IIIT Pet layout (``images/``, ``annotations/trimaps/``,
  ``annotations/xmls/``). Box ``animal`` (default): the tight box around trimap pixels that are not
  background (trimap value 2). Box ``head``: the head box of the VOC XML (only some images have one).
* ``coco``: a COCO instances JSON (``images``, ``annotations`` with ``bbox = [x, y, w, h]`` in
  pixels) beside its images (or in ``annotations/`` with images in ``images/`` or beside it).
* ``csv``: a CSV with header ``filename,xmin,ymin,xmax,ymax`` in pixels (continuous); several rows for
  one file are several boxes. Files are relative to the CSV's folder (or its ``images/``).

The Oxford-IIIT Pet layout is detected before VOC because it also holds VOC XML files.
"""

from __future__ import annotations

import csv
import json
import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from .boxes import cxcywh_to_xyxy, denormalize_boxes, xywh_to_xyxy
from .errors import ConfigError, DataError
from .imageio import is_image_file

FORMATS = ("yolo", "voc", "oxford-pets", "coco", "csv")
OXFORD_BOXES = ("animal", "head")

#: Trimap value for background in the Oxford-IIIT Pet annotations (1 pet, 2 background, 3 border).
OXFORD_TRIMAP_BACKGROUND = 2


class DataFormatError(ConfigError):
    """The folder is not in a format localizer reads (or not in the one asked for)."""


class AnnotationError(DataError):
    """An annotation that cannot be used (``reason``: ``missing-annotation``, ``unparsable-annotation``, ...)."""


@dataclass(frozen=True)
class Item:
    """One image found in a dataset folder, with what is needed to read its boxes.

    ``annotation`` is the annotation file (None when there is none); ``payload`` holds boxes
    already parsed from a shared annotation file (COCO, CSV).
    """

    image: Path
    annotation: Path | None
    payload: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class Reader:
    """A dataset format: ``list_items(root) -> list[Item]`` and
    ``parse(item, width, height) -> (K, 4)`` pixel xyxy boxes (K may be 0)."""

    name: str
    list_items: Callable[[Path], list[Item]]
    parse: Callable[[Item, int, int], np.ndarray]


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


def parse_yolo_label(text: str, width: int, height: int, name: str = "label") -> np.ndarray:
    """Parse YOLO label text into ``(K, 4)`` pixel xyxy boxes for a ``width`` x ``height`` image.

    Each line is ``class cx cy w h`` (normalized cxcywh) or ``class x1 y1 x2 y2 ...`` (a normalized
    polygon, at least 3 points, whose extent is taken). Blank lines are ignored.

    Raises:
        AnnotationError: ``unparsable-annotation`` (wrong field count, not a number) or ``nan-box``.
    """
    boxes = []
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
    normalized = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return denormalize_boxes(normalized, width, height)


def _yolo_parse(item: Item, width: int, height: int) -> np.ndarray:
    return parse_yolo_label(_read_text(item.annotation), width, height, item.annotation.name)


# --------------------------------------------------------------------------------------------- voc
def parse_voc_xml(path: Path, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Parse the ``<object><bndbox>`` boxes of a PASCAL VOC XML file into ``(K, 4)`` pixel xyxy.

    VOC coordinates are 1-based inclusive pixel indices (VOC devkit, Everingham et al. 2010), so the
    continuous box is ``(xmin - 1, ymin - 1, xmax, ymax)``. When the XML's ``<size>`` differs from
    the decoded image (``width`` x ``height``), boxes are scaled to the image.

    Raises:
        AnnotationError: ``missing-annotation``, ``unparsable-annotation`` or ``nan-box``.
    """
    try:
        tree = ET.fromstring(_read_text(path))
    except ET.ParseError as exc:
        raise AnnotationError("unparsable-annotation", f"{path.name}: invalid XML ({exc})") from exc
    boxes = []
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
    result = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    size = tree.find("size")
    if size is not None and width and height:
        try:
            xml_w, xml_h = float(size.findtext("width")), float(size.findtext("height"))
        except (TypeError, ValueError):
            xml_w = xml_h = 0.0
        if xml_w > 0 and xml_h > 0 and (xml_w, xml_h) != (width, height):
            result = result * np.array([width / xml_w, height / xml_h] * 2)
    return result


def _voc_items(root: Path) -> list[Item]:
    xml_by_stem = {p.stem: p for p in sorted(root.rglob("*.xml"))}
    return [Item(image, xml_by_stem.get(image.stem)) for image in _images_under(root)]


def _voc_parse(item: Item, width: int, height: int) -> np.ndarray:
    if item.annotation is None:
        raise AnnotationError("missing-annotation", f"no XML file named {item.image.stem}.xml")
    return parse_voc_xml(item.annotation, width, height)


# ------------------------------------------------------------------------------------- oxford-pets
def _oxford_items(root: Path, box: str) -> list[Item]:
    if box not in OXFORD_BOXES:
        raise ConfigError(f"oxford-pets box must be one of {OXFORD_BOXES}, got {box!r}")
    folder = root / "annotations" / ("trimaps" if box == "animal" else "xmls")
    suffix = ".png" if box == "animal" else ".xml"
    return [Item(image, folder / f"{image.stem}{suffix}") for image in _images_under(root / "images")]


def trimap_box(path: Path, width: int, height: int) -> np.ndarray:
    """Tight pixel xyxy box ``(1, 4)`` around the non-background pixels of an Oxford-IIIT trimap.

    Background is value 2 (1 = pet, 3 = border; Parkhi et al., CVPR 2012, dataset README). The box
    of pixels in columns c0..c1 and rows r0..r1 is ``(c0, r0, c1 + 1, r1 + 1)`` (continuous). When
    the trimap's size differs from the image's, the box is scaled to the image.

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
    if (mask_w, mask_h) != (width, height):
        box = box * np.array([width / mask_w, height / mask_h] * 2)
    return box


def _oxford_parse(item: Item, width: int, height: int) -> np.ndarray:
    if item.annotation.suffix == ".png":
        return trimap_box(item.annotation, width, height)
    if not item.annotation.is_file():
        raise AnnotationError("missing-annotation", f"no head box XML {item.annotation.name}")
    return parse_voc_xml(item.annotation, width, height)


# -------------------------------------------------------------------------------------------- coco
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


def _coco_items(root: Path) -> list[Item]:
    path = _find_coco_json(root)
    if path is None:
        raise DataFormatError(f"{root}: no COCO instances JSON (with 'images' and 'annotations')")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = {img["id"]: img["file_name"] for img in data["images"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(f"{path}: not a COCO instances JSON ({exc})") from exc
    boxes: dict[Any, list] = defaultdict(list)
    for ann in data.get("annotations", []):
        boxes[ann.get("image_id")].append(ann.get("bbox"))
    bases = [path.parent, path.parent / "images", path.parent.parent, path.parent.parent / "images"]
    items = []
    for image_id, name in images.items():
        candidates = [base / name for base in bases]
        image = next((c for c in candidates if c.is_file()), candidates[0])
        items.append(Item(image, path, payload=boxes.get(image_id, [])))
    return sorted(items, key=lambda it: str(it.image))


def _coco_parse(item: Item, width: int, height: int) -> np.ndarray:
    rows = []
    for bbox in item.payload:
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise AnnotationError("unparsable-annotation", f"COCO bbox {bbox!r} is not [x, y, w, h]")
        rows.append([_float(v, f"{item.annotation.name} bbox") for v in bbox])
    return xywh_to_xyxy(np.array(rows, dtype=np.float64).reshape(-1, 4))


# --------------------------------------------------------------------------------------------- csv
CSV_COLUMNS = ("filename", "xmin", "ymin", "xmax", "ymax")


def _find_csv(root: Path) -> Path | None:
    for path in sorted(root.glob("*.csv")):
        try:
            with path.open(encoding="utf-8", newline="") as f:
                header = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError):
            continue
        if [h.strip().lower() for h in header[:5]] == list(CSV_COLUMNS):
            return path
    return None


def _csv_items(root: Path) -> list[Item]:
    path = _find_csv(root)
    if path is None:
        raise DataFormatError(f"{root}: no CSV with header {','.join(CSV_COLUMNS)}")
    rows: dict[str, list] = defaultdict(list)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for number, row in enumerate(reader, start=2):
            if row:
                rows[row[0].strip()].append((number, row[1:5]))
    base = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    items = [Item(base / name, path, payload=boxes) for name, boxes in rows.items()]
    return sorted(items, key=lambda it: str(it.image))


def _csv_parse(item: Item, width: int, height: int) -> np.ndarray:
    boxes = []
    for number, values in item.payload:
        where = f"{item.annotation.name} line {number}"
        if len(values) != 4:
            raise AnnotationError("unparsable-annotation", f"{where}: expected 5 columns")
        boxes.append([_float(v, where) for v in values])
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


# ------------------------------------------------------------------------------------------ public
def get_reader(fmt: str, oxford_box: str = "animal") -> Reader:
    """The :class:`Reader` for format ``fmt`` (one of :data:`FORMATS`).

    Raises:
        DataFormatError: unknown format.
    """
    readers = {
        "yolo": Reader("yolo", _yolo_items, _yolo_parse),
        "voc": Reader("voc", _voc_items, _voc_parse),
        "oxford-pets": Reader("oxford-pets", lambda root: _oxford_items(root, oxford_box), _oxford_parse),
        "coco": Reader("coco", _coco_items, _coco_parse),
        "csv": Reader("csv", _csv_items, _csv_parse),
    }
    if fmt not in readers:
        raise DataFormatError(f"unknown format {fmt!r}; formats read: {', '.join(FORMATS)} (or 'auto')")
    return readers[fmt]


def detect_format(root: Path | str) -> str:
    """Guess the format of dataset folder ``root`` from its layout.

    Order: ``oxford-pets`` (``annotations/trimaps/``), ``yolo`` (``images/`` beside ``labels/``),
    ``coco`` (a JSON with images and annotations), ``csv`` (a CSV with the expected header),
    ``voc`` (XML files).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DataFormatError: no known layout found; the message lists the formats and their layouts.
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
    raise DataFormatError(f"{root}: no known dataset layout. {FORMAT_HELP}")


FORMAT_HELP = (
    "Formats read: yolo (images/ + labels/*.txt), voc (images + PASCAL VOC .xml), "
    "oxford-pets (images/ + annotations/trimaps/ + annotations/xmls/), coco (instances .json beside "
    "the images), csv (filename,xmin,ymin,xmax,ymax in pixels)."
)
