"""The ``createml`` layout: Apple CreateML's object-detection JSON beside its photos (or one per split
folder, as Roboflow exports it: ``train/_annotations.createml.json``): a list of ``{"image": NAME,
"annotations": [{"label", "coordinates": {"x", "y", "width", "height"}}]}`` where ``x, y`` is the box's
CENTRE and ``width, height`` its size, in the photo's pixels, so the box is ``(x - width / 2, y -
height / 2, x + width / 2, y + height / 2)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from localizer.data.readers.base import (LABEL_NAMES, Annotation, AnnotationError, DataFormatError, Item, Reader,
                                         parse_number)
from localizer.data.readers.jsonfiles import find_json_files, load_entries, shared_file_items


def _entries(data: Any) -> list[tuple[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(e, dict) and "image" in e for e in data):
        raise TypeError("not a list of {'image', 'annotations'} entries")
    return [(entry["image"], entry.get("annotations") or []) for entry in data]


def find_createml(root: Path) -> list[Path]:
    """The CreateML JSONs of ``root`` (or one per folder one level down)."""
    return find_json_files(root, ("image", "annotations", "coordinates"))


def _items(root: Path) -> list[Item]:
    paths = find_createml(root)
    if not paths:
        raise DataFormatError(f"{root}: no CreateML JSON (a list of 'image' and 'annotations' with 'coordinates')")
    return shared_file_items(root, paths, lambda path: load_entries(path, _entries, "a CreateML JSON"))


def _parse(item: Item, width: int, height: int) -> Annotation:
    boxes, labels = [], []
    if not isinstance(item.payload, list):
        raise AnnotationError("unparsable-annotation", f"{item.annotation.name}: the annotations of "
                                                       f"{item.image.name} are not a list")
    for number, annotation in enumerate(item.payload, start=1):
        where = f"{item.annotation.name} {item.image.name} annotation {number}"
        coordinates = annotation.get("coordinates") if isinstance(annotation, dict) else None
        if not isinstance(coordinates, dict):
            raise AnnotationError("unparsable-annotation", f"{where}: no coordinates {{x, y, width, height}}")
        cx, cy, w, h = (parse_number(coordinates.get(k), f"{where} {k}") for k in ("x", "y", "width", "height"))
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        labels.append(str(annotation.get("label") or ""))
    return Annotation(np.array(boxes, dtype=np.float64).reshape(-1, 4), tuple(labels))


READER = Reader("createml", _items, _parse, lambda root: LABEL_NAMES)
