"""The ``labelme`` layout: one Labelme JSON per photo (Wada, labelme), beside it or anywhere under
the folder: ``shapes`` (each a ``label``, a ``shape_type`` and ``points`` ``[[x, y], ...]`` in the
photo's pixels), ``imagePath`` (the photo, relative to the JSON's folder) and ``imageWidth`` /
``imageHeight`` (the frame). A ``rectangle`` (two corners, in any order), ``polygon`` or ``mask`` gives
its points' extent, a ``circle`` (centre and a point on it) its square; ``point``, ``line`` and
``linestrip`` have no box. A JSON whose photo is not there is a label without a photo; a photo
without a JSON is ``missing-annotation``."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from localizer.data.readers.base import (LABEL_NAMES, Annotation, AnnotationError, DataFormatError, Item, Reader,
                                         frame_size, mentions_keys, parse_number, read_json)
from localizer.data.readers.jsonfiles import point_extent, shapes_annotation
from localizer.data.readers.paths import FileIndex, export_split, one_item_per_image, unlisted_images

#: Shape types with an extent: the box of their points (a circle: of its square).
BOX_SHAPES = ("rectangle", "polygon", "mask", "circle")


@dataclass(frozen=True)
class _Shapes:
    """What a Labelme JSON says of its photo: the shapes and the frame (``imageWidth``, ``imageHeight``)."""

    shapes: list
    frame: tuple[float, float] | None


def is_labelme(path: Path) -> bool:
    """True for a Labelme JSON (keys ``shapes`` and ``imagePath``)."""
    return path.suffix.lower() == ".json" and path.is_file() and mentions_keys(path, ("shapes", "imagePath"))


def find_labelme(root: Path) -> Path | None:
    """The first Labelme JSON under ``root``, or None."""
    return next((p for p in sorted(root.rglob("*.json")) if is_labelme(p)), None)


def _item(path: Path, root: Path, index: FileIndex, beside: list[Path]) -> Item:
    """The photo of one Labelme JSON (its ``imagePath``, else the one image ``beside`` it with its stem),
    or :meth:`Item.orphan` when there is none."""
    show = path.relative_to(root).as_posix()
    try:
        data = read_json(path)
        named, shapes = str(data.get("imagePath") or ""), data["shapes"]
        payload = _Shapes(list(shapes), frame_size(data.get("imageWidth"), data.get("imageHeight")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        problem = AnnotationError("unparsable-annotation",
                                  f"{path.name}: not a Labelme JSON ({type(exc).__name__}: {exc})")
        if len(beside) != 1:
            return Item.orphan(path, f"{show}: {problem.detail}", problem.reason)
        return Item(beside[0], path, problem=problem)
    image, problem = index.find(named, [path.parent], path.name) if named else (None, None)
    if image is None or problem is not None:
        if len(beside) != 1:
            return Item.orphan(path, f"no photo for {show}: neither its imagePath {named!r} nor an image "
                                     f"{path.stem}.* beside it is there")
        image = beside[0]
    return Item(image, path, payload, export_split(image, root))


def _items(root: Path) -> list[Item]:
    paths = [p for p in sorted(root.rglob("*.json")) if is_labelme(p)]
    if not paths:
        raise DataFormatError(f"{root}: no Labelme JSON (with 'shapes' and 'imagePath')")
    index = FileIndex(root)
    by_stem: dict[Path, list[Path]] = defaultdict(list)
    for image in index.files.values():
        by_stem[image.with_suffix("")].append(image)
    listed = [_item(path, root, index, by_stem.get(path.with_suffix(""), [])) for path in paths]
    orphans = [it for it in listed if it.is_orphan]
    items = one_item_per_image([it for it in listed if not it.is_orphan],
                               lambda it: it.annotation.relative_to(root).as_posix())
    items += unlisted_images(root, {it.image for it in items}, "a Labelme JSON")
    return sorted(items, key=lambda it: str(it.image)) + orphans


def _shape_box(shape: dict, where: str) -> list[float] | None:
    """The pixel xyxy box of one Labelme shape, None for a shape without one (a point or a line)."""
    kind = shape.get("shape_type") or "polygon"  # older Labelme versions write no shape_type for polygons
    if kind not in BOX_SHAPES:
        return None
    points = shape.get("points") or []
    if not isinstance(points, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in points):
        raise AnnotationError("unparsable-annotation", f"{where}: points {points!r} are not [[x, y], ...]")
    if kind == "circle":
        if len(points) != 2:
            raise AnnotationError("unparsable-annotation", f"{where}: a circle takes its centre and a point on it")
        (cx, cy), (px, py) = [[parse_number(v, where) for v in p] for p in points]
        r = math.hypot(px - cx, py - cy)
        return [cx - r, cy - r, cx + r, cy + r]
    return point_extent([p[0] for p in points], [p[1] for p in points], where)


def _parse(item: Item, width: int, height: int) -> Annotation:
    return shapes_annotation(_shapes(item), item.annotation.name, item.payload.frame)


def _shapes(item: Item):
    """``(box or None, label, shape_type)`` of each shape of a Labelme file."""
    for number, shape in enumerate(item.payload.shapes, start=1):
        where = f"{item.annotation.name} shape {number}"
        if not isinstance(shape, dict):
            raise AnnotationError("unparsable-annotation", f"{where}: not an object")
        yield _shape_box(shape, where), str(shape.get("label") or ""), str(shape.get("shape_type"))


READER = Reader("labelme", _items, _parse, lambda root: LABEL_NAMES)
