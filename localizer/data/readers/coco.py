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
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localizer.boxes import xywh_to_xyxy
from localizer.data.readers.base import (LABEL_NAMES, Annotation, AnnotationError, DataFormatError, Item, Reader,
                                         frame_size, mentions_keys, parse_number, read_json)
from localizer.data.readers.paths import FileIndex, export_split, one_item_per_image, readable_files, unlisted_images


@dataclass(frozen=True)
class _CocoImage:
    """What the COCO JSON says about one image: its annotations, its frame, the category names, and
    its ``id`` and ``file_name`` (for messages)."""

    annotations: list
    frame: tuple[float, float] | None
    categories: dict
    image_id: Any = None
    file_name: str = ""


#: COCO's own names of an instances file of a subset: ``instances_<subset>.json`` (COCO, CVAT, Datumaro).
_INSTANCES = re.compile(r"instances_(.+)")


def _is_coco(path: Path) -> bool:
    return path.is_file() and mentions_keys(path, ("images", "annotations"))


def _coco_files(folder: Path) -> list[Path]:
    """The COCO JSONs of ``folder`` and its ``annotations/``: those named ``instances_<subset>.json`` when
    there are any (CVAT's export of a task with subsets writes one per subset; COCO's own folder holds
    captions and keypoints files beside them), else every JSON with ``images`` and ``annotations``."""
    found = [p for p in sorted(folder.glob("*.json")) + sorted(folder.glob("annotations/*.json")) if _is_coco(p)]
    instances = [p for p in found if _INSTANCES.fullmatch(p.stem)]
    return instances or found


def find_coco_jsons(root: Path) -> list[Path]:
    """The COCO instances JSONs of ``root`` (:func:`_coco_files`: every one of ``root`` and
    ``root/annotations``); else those of each folder one level down (Roboflow's
    ``train/_annotations.coco.json``, ...). Empty when there is none. Found by their keys anywhere in
    the file (:func:`~localizer.data.readers.base.mentions_keys`), in any order."""
    top = _coco_files(root) if root.is_dir() else []
    if top:
        return top
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [p for folder in folders for p in _coco_files(folder)]


def _id_key(value: Any) -> str:
    """An id as COCO files write it, in one form: ``7``, ``7.0`` and ``"7"`` are the same image (tools
    write ``images[].id`` as strings and ``image_id`` as numbers, or the reverse)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text


def find_coco_json(root: Path) -> Path | None:
    """The first of :func:`find_coco_jsons`, or None."""
    return next(iter(find_coco_jsons(root)), None)


def _data(path: Path) -> tuple[list, list, dict]:
    """The COCO JSON ``path``: ``(images entries, annotations, category names by id)``.

    Raises:
        DataFormatError: not a COCO instances JSON (the message names the file and the reason).
    """
    try:
        data = read_json(path)
        images = list(data["images"])
        bad = next((i for i, img in enumerate(images)
                    if not isinstance(img, dict) or not {"id", "file_name"} <= set(img)), None)
        if bad is not None:
            raise KeyError(f"images[{bad}] has no 'id' and 'file_name'")
        categories = {_id_key(cat["id"]): str(cat.get("name", cat["id"])) for cat in data.get("categories") or []}
        annotations = data.get("annotations") or []
        if not all(isinstance(ann, dict) for ann in annotations):
            raise TypeError("an annotation is not an object")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataFormatError(f"{path}: not a COCO instances JSON ({type(exc).__name__}: {exc})") from exc
    return images, annotations, categories


def _bases(path: Path) -> list[Path]:
    """Where the images a COCO JSON names may lie: beside it, in ``images/`` beside it or above it, and for
    a subset's file (``annotations/instances_<Subset>.json``) in ``images/<Subset>/`` (CVAT, Datumaro)."""
    bases = [path.parent, path.parent / "images", path.parent.parent, path.parent.parent / "images"]
    subset = _INSTANCES.fullmatch(path.stem)
    return bases + ([path.parent.parent / "images" / subset.group(1), path.parent / "images" / subset.group(1)]
                    if subset else [])


def _shown(ids: list, most: int = 5) -> str:
    return ", ".join(repr(i) for i in ids[:most]) + (", ..." if len(ids) > most else "")


def _unmatched(path: Path, root: Path, by_image: dict, entries: dict) -> tuple[list[Item], str]:
    """The annotations of ``path`` whose ``image_id`` no ``images`` entry has: ``([an Item.orphan naming
    them], what a photo without annotations is told)``, or ``([], "")`` when every annotation has its image."""
    lost = sorted(set(by_image) - set(entries))
    if not lost:
        return [], ""
    count = sum(len(by_image[i]) for i in lost)
    known = _shown(list(entries)) or "none"
    orphan = Item.orphan(path, f"{count} annotations of {path.relative_to(root).as_posix()} name image ids that no "
                               f"images entry has ({_shown(lost)}; the images' ids: {known}): their photos are unknown")
    return [orphan], (f"no annotation of {path.name} names its id, while {count} name ids that no images entry has "
                      f"({_shown(lost)}): are the ids of images and annotations written alike?")


def _json_items(path: Path, root: Path, index: FileIndex) -> list[Item]:
    images, annotations, categories = _data(path)
    by_image: dict[Any, list] = defaultdict(list)
    for ann in annotations:
        by_image[_id_key(ann.get("image_id"))].append(ann)
    entries: dict[Any, dict] = defaultdict(dict)
    for img in images:  # the same entry twice is one entry; two entries with one id are a conflict
        entries[_id_key(img["id"])][json.dumps(img, sort_keys=True, default=str)] = img
    bases = _bases(path)
    items, mismatch = _unmatched(path, root, by_image, entries)
    for key, distinct in entries.items():
        for img in distinct.values():
            image, problem = index.find(img["file_name"], bases, path.name)
            if problem is None and len(distinct) > 1:
                names = " and ".join(repr(e["file_name"]) for e in distinct.values())
                problem = AnnotationError("ambiguous-annotation",
                                          f"{path.name}: the images entries {names} share id {img['id']!r}, "
                                          "so its annotations belong to neither")
            if problem is None and mismatch and key not in by_image:
                problem = AnnotationError("no-box", mismatch)
            payload = _CocoImage(by_image.get(key, []), frame_size(img.get("width"), img.get("height")),
                                 categories, img["id"], str(img["file_name"]))
            items.append(Item(image, path, payload, export_split(image, root), problem))
    return items


def _items(root: Path) -> list[Item]:
    paths = find_coco_jsons(root)
    if not paths:
        raise DataFormatError(f"{root}: no COCO instances JSON (with 'images' and 'annotations')")
    index = FileIndex(root)
    listed = readable_files(paths, root, lambda path: _json_items(path, root, index))
    orphans = [it for it in listed if it.is_orphan]
    items = one_item_per_image(
        [it for it in listed if not it.is_orphan],
        lambda it: f"{it.annotation.name} id {it.payload.image_id!r} ({it.payload.file_name!r})")
    listed_in = " or ".join(p.relative_to(root).as_posix() for p in paths)
    items += unlisted_images(root, {it.image for it in items}, listed_in)
    return sorted(items, key=lambda it: str(it.image)) + orphans


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
        labels.append("" if category is None else item.payload.categories.get(_id_key(category), str(category)))
    if crowd and not rows:
        raise AnnotationError("no-box", f"only crowd boxes were found ({crowd} with iscrowd: 1, each around a "
                                        f"group of objects); no box of a single one")
    boxes = xywh_to_xyxy(np.array(rows, dtype=np.float64).reshape(-1, 4))
    return Annotation(boxes, tuple(labels), item.payload.frame)


READER = Reader("coco", _items, _parse, lambda root: LABEL_NAMES)
