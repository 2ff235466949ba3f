"""The ``coco`` layout: a COCO instances JSON (``images``, ``annotations`` with ``bbox = [x, y, w,
h]`` in pixels) beside its images (or in ``annotations/`` with images in ``images/`` or beside it).
The classes are the names of ``categories``; the frame is ``images[].width/height``. Crowd
annotations (``iscrowd: 1``, one region around a group of objects; Lin et al., ECCV 2014) are left
out: the primary box must be one animal."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localizer.boxes import xywh_to_xyxy
from localizer.data.readers.base import LABEL_NAMES, Annotation, AnnotationError, DataFormatError, Item, Reader, frame_size, parse_number


@dataclass(frozen=True)
class _CocoImage:
    """What the COCO JSON says about one image: its annotations, its frame and the category names."""

    annotations: list
    frame: tuple[float, float] | None
    categories: dict


def find_coco_json(root: Path) -> Path | None:
    """The first JSON of ``root`` (or ``root/annotations``) with ``images`` and ``annotations``, or None."""
    for path in sorted(root.glob("*.json")) + sorted(root.glob("annotations/*.json")):
        try:
            with path.open(encoding="utf-8") as f:
                head = f.read(1_000_000)
        except (OSError, UnicodeDecodeError):
            continue
        if '"images"' in head and '"annotations"' in head:
            return path
    return None


def _data(root: Path) -> tuple[Path, dict, list, dict]:
    """The COCO JSON of ``root``: ``(path, images by id, annotations, category names by id)``."""
    path = find_coco_json(root)
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


def _items(root: Path) -> list[Item]:
    path, images, annotations, categories = _data(root)
    by_image: dict[Any, list] = defaultdict(list)
    for ann in annotations:
        by_image[ann.get("image_id")].append(ann)
    bases = [path.parent, path.parent / "images", path.parent.parent, path.parent.parent / "images"]
    items = []
    for image_id, (name, img) in images.items():
        candidates = [base / name for base in bases]
        image = next((c for c in candidates if c.is_file()), candidates[0])
        frame = frame_size(img.get("width"), img.get("height"))
        items.append(Item(image, path, payload=_CocoImage(by_image.get(image_id, []), frame, categories)))
    return sorted(items, key=lambda it: str(it.image))


def _parse(item: Item, width: int, height: int) -> Annotation:
    rows, labels, crowd = [], [], 0
    for ann in item.payload.annotations:
        if ann.get("iscrowd", 0) == 1:  # one region around a group of objects, not one animal
            crowd += 1
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise AnnotationError("unparsable-annotation", f"COCO bbox {bbox!r} is not [x, y, w, h]")
        rows.append([parse_number(v, f"{item.annotation.name} bbox") for v in bbox])
        category = ann.get("category_id")
        labels.append("" if category is None else item.payload.categories.get(category, str(category)))
    if crowd and not rows:
        raise AnnotationError("no-box", f"only crowd boxes were found ({crowd} with iscrowd: 1, each around a "
                                        f"group of objects); no box of a single one")
    boxes = xywh_to_xyxy(np.array(rows, dtype=np.float64).reshape(-1, 4))
    return Annotation(boxes, tuple(labels), item.payload.frame)


READER = Reader("coco", _items, _parse, lambda root: LABEL_NAMES)
