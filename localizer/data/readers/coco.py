"""The ``coco`` layout: a COCO instances JSON (``images``, ``annotations`` with ``bbox = [x, y, w,
h]`` in pixels) beside its images (or in ``annotations/`` with images in ``images/`` or beside it),
or one per split folder (Roboflow's COCO export: ``train/``, ``valid/``, ``test/``, each with
``_annotations.coco.json`` beside its images; the folder gives the photo's export split). The
classes are the names of ``categories``; the frame is ``images[].width/height``. Crowd annotations
(``iscrowd: 1``, one region around a group of objects; Lin et al., ECCV 2014) are left out: the
primary box must be one animal. An annotation whose ``bbox`` is empty (missing, ``[]`` or zero
width and height) but that has a ``segmentation`` polygon gives the polygon's extent, as YOLO
polygons do.

An annotation belongs to exactly one image, by ``image_id``: two ``images`` entries that share an
id (a CVAT export bug), or two entries naming the same file, are reported (``ambiguous-annotation``,
naming both), never merged. ``file_name`` is found as exporters write it
(:class:`~localizer.data.readers.paths.FileIndex`); an image under the folder that no entry names is
listed as ``missing-annotation``."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localizer.boxes import xywh_to_xyxy
from localizer.data.readers.base import (LABEL_NAMES, Annotation, AnnotationError, DataFormatError, Item, Reader,
                                         frame_size, parse_number)
from localizer.data.readers.paths import FileIndex, export_split, one_item_per_image, unlisted_images


@dataclass(frozen=True)
class _CocoImage:
    """What the COCO JSON says about one image: its annotations, its frame, the category names, and
    its ``id`` and ``file_name`` (for messages)."""

    annotations: list
    frame: tuple[float, float] | None
    categories: dict
    image_id: Any = None
    file_name: str = ""


def _is_coco(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            head = f.read(1_000_000)
    except (OSError, UnicodeDecodeError):
        return False
    return '"images"' in head and '"annotations"' in head


def find_coco_jsons(root: Path) -> list[Path]:
    """The COCO instances JSONs of ``root``: the first JSON of ``root`` (or ``root/annotations``)
    with ``images`` and ``annotations``; else the first such JSON of each folder one level down
    (Roboflow's ``train/_annotations.coco.json``, ...). Empty when there is none."""
    top = next((p for p in sorted(root.glob("*.json")) + sorted(root.glob("annotations/*.json")) if _is_coco(p)), None)
    if top is not None:
        return [top]
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = (next((p for p in sorted(folder.glob("*.json")) if _is_coco(p)), None) for folder in folders)
    return [p for p in found if p is not None]


def find_coco_json(root: Path) -> Path | None:
    """The first of :func:`find_coco_jsons`, or None."""
    return next(iter(find_coco_jsons(root)), None)


def _data(path: Path) -> tuple[list, list, dict]:
    """The COCO JSON ``path``: ``(images entries, annotations, category names by id)``.

    Raises:
        DataFormatError: not a COCO instances JSON (the message names the file and the reason).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = list(data["images"])
        bad = next((i for i, img in enumerate(images)
                    if not isinstance(img, dict) or not {"id", "file_name"} <= set(img)), None)
        if bad is not None:
            raise KeyError(f"images[{bad}] has no 'id' and 'file_name'")
        categories = {cat["id"]: str(cat.get("name", cat["id"])) for cat in data.get("categories") or []}
        annotations = data.get("annotations") or []
        if not all(isinstance(ann, dict) for ann in annotations):
            raise TypeError("an annotation is not an object")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataFormatError(f"{path}: not a COCO instances JSON ({type(exc).__name__}: {exc})") from exc
    return images, annotations, categories


def _json_items(path: Path, root: Path, index: FileIndex) -> list[Item]:
    images, annotations, categories = _data(path)
    by_image: dict[Any, list] = defaultdict(list)
    for ann in annotations:
        by_image[ann.get("image_id")].append(ann)
    entries: dict[Any, dict] = defaultdict(dict)
    for img in images:  # the same entry twice is one entry; two entries with one id are a conflict
        entries[img["id"]][json.dumps(img, sort_keys=True, default=str)] = img
    bases = [path.parent, path.parent / "images", path.parent.parent, path.parent.parent / "images"]
    items = []
    for image_id, distinct in entries.items():
        for img in distinct.values():
            image, problem = index.find(img["file_name"], bases, path.name)
            if problem is None and len(distinct) > 1:
                names = " and ".join(repr(e["file_name"]) for e in distinct.values())
                problem = AnnotationError("ambiguous-annotation",
                                          f"{path.name}: the images entries {names} share id {image_id!r}, "
                                          "so its annotations belong to neither")
            payload = _CocoImage(by_image.get(image_id, []), frame_size(img.get("width"), img.get("height")),
                                 categories, image_id, str(img["file_name"]))
            items.append(Item(image, path, payload, export_split(image, root), problem))
    return items


def _items(root: Path) -> list[Item]:
    paths = find_coco_jsons(root)
    if not paths:
        raise DataFormatError(f"{root}: no COCO instances JSON (with 'images' and 'annotations')")
    index = FileIndex(root)
    items = one_item_per_image(
        [item for path in paths for item in _json_items(path, root, index)],
        lambda it: f"{it.annotation.name} id {it.payload.image_id!r} ({it.payload.file_name!r})")
    listed_in = " or ".join(p.relative_to(root).as_posix() for p in paths)
    items += unlisted_images(root, {it.image for it in items}, listed_in)
    return sorted(items, key=lambda it: str(it.image))


def _polygon_extent(segmentation: Any, where: str) -> list[float]:
    """``[x, y, w, h]`` of the extent of COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` (pixels).

    Raises:
        AnnotationError: ``unparsable-annotation`` (RLE, or not polygons of at least 3 points).
    """
    if not isinstance(segmentation, list) or not segmentation or not all(
            isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation):
        raise AnnotationError("unparsable-annotation", f"{where}: the bbox is empty and the segmentation is not "
                                                       f"polygons [[x1, y1, x2, y2, x3, y3, ...]] (RLE is not read)")
    values = [parse_number(v, where) for polygon in segmentation for v in polygon]
    xs, ys = values[0::2], values[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _bbox(ann: dict, where: str) -> list[float]:
    """The ``[x, y, w, h]`` of one annotation: its ``bbox``, or the extent of its polygon when the
    ``bbox`` is empty (missing, ``[]``, or zero width and height) and a ``segmentation`` exists."""
    bbox = ann.get("bbox")
    empty = bbox is None or bbox == [] or (isinstance(bbox, list) and len(bbox) == 4 and bbox[2:] == [0, 0])
    if empty and ann.get("segmentation"):
        return _polygon_extent(ann["segmentation"], where)
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise AnnotationError("unparsable-annotation", f"COCO bbox {bbox!r} is not [x, y, w, h]")
    return [parse_number(v, f"{where} bbox") for v in bbox]


def _parse(item: Item, width: int, height: int) -> Annotation:
    rows, labels, crowd = [], [], 0
    for ann in item.payload.annotations:
        if ann.get("iscrowd", 0) == 1:  # one region around a group of objects, not one animal
            crowd += 1
            continue
        rows.append(_bbox(ann, item.annotation.name))
        category = ann.get("category_id")
        labels.append("" if category is None else item.payload.categories.get(category, str(category)))
    if crowd and not rows:
        raise AnnotationError("no-box", f"only crowd boxes were found ({crowd} with iscrowd: 1, each around a "
                                        f"group of objects); no box of a single one")
    boxes = xywh_to_xyxy(np.array(rows, dtype=np.float64).reshape(-1, 4))
    return Annotation(boxes, tuple(labels), item.payload.frame)


READER = Reader("coco", _items, _parse, lambda root: LABEL_NAMES)
