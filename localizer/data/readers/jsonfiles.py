"""What the readers of annotation tools' JSON share (Labelme, VGG Image Annotator, CreateML): finding the
file of a folder (or one per split folder) by its keys, listing the images it names (found as exporters
write their names, :class:`~localizer.data.readers.paths.FileIndex`), the extent of a shape, and an
image's shapes as its annotation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from localizer.data.readers.base import (Annotation, AnnotationError, DataFormatError, Item, mentions_keys,
                                         parse_number, read_json)
from localizer.data.readers.paths import FileIndex, export_split, one_item_per_image, readable_files, unlisted_images


def find_json_files(root: Path, keys: tuple[str, ...]) -> list[Path]:
    """The JSON files of ``root`` that have every one of ``keys`` (anywhere in the file, in any
    order); else those of each folder one level down (an export with ``train/``, ``valid/``, ...)."""
    def of(folder: Path) -> list[Path]:
        return [p for p in sorted(folder.glob("*.json")) if p.is_file() and mentions_keys(p, keys)]

    if not root.is_dir():
        return []
    return of(root) or [p for folder in sorted(p for p in root.iterdir() if p.is_dir()) for p in of(folder)]


def load_entries(path: Path, entries: Callable[[Any], list[tuple[str, Any]]], what: str) -> list[tuple[str, Any]]:
    """The ``(image name, payload)`` entries of the JSON file ``path`` that ``entries`` takes from it.

    Raises:
        DataFormatError: the file is not JSON or not ``what`` (the message names the file and the reason).
    """
    try:
        return entries(read_json(path))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataFormatError(f"{path}: not {what} ({type(exc).__name__}: {exc})") from exc


def shared_file_items(root: Path, paths: list[Path], entries: Callable[[Path], list[tuple[str, Any]]]) -> list[Item]:
    """One :class:`Item` per image that the JSON files ``paths`` name (``entries(path)``: its ``(name,
    payload)`` pairs), found beside the file or in its ``images/``; an image named twice is
    ``ambiguous-annotation``, one named by none ``missing-annotation``; sorted by image."""
    index = FileIndex(root)

    def items_of(path: Path) -> list[Item]:
        found = (index.find(str(name), [path.parent, path.parent / "images"], path.name) + (payload,)
                 for name, payload in entries(path))
        return [Item(image, path, payload, export_split(image, root), problem) for image, problem, payload in found]

    listed = readable_files(paths, root, items_of)
    items = one_item_per_image([it for it in listed if not it.is_orphan],
                               lambda it: f"{it.annotation.relative_to(root).as_posix()}")
    names = " or ".join(p.relative_to(root).as_posix() for p in paths)
    items += unlisted_images(root, {it.image for it in items}, names)
    return sorted(items, key=lambda it: str(it.image)) + [it for it in listed if it.is_orphan]


def point_extent(xs: Iterable, ys: Iterable, where: str) -> list[float]:
    """``[xmin, ymin, xmax, ymax]`` of points (a polygon's or a rectangle's corners), in pixels.

    Raises:
        AnnotationError: ``unparsable-annotation`` (no point, or x and y counts differ) or ``nan-box``.
    """
    xs, ys = [parse_number(x, where) for x in xs], [parse_number(y, where) for y in ys]
    if not xs or len(xs) != len(ys):
        raise AnnotationError("unparsable-annotation", f"{where}: {len(xs)} x and {len(ys)} y coordinates")
    return [min(xs), min(ys), max(xs), max(ys)]


def ellipse_extent(cx: float, cy: float, rx: float, ry: float, theta: float = 0.0) -> list[float]:
    """The axis-aligned extent of an ellipse of radii ``rx``, ``ry`` turned by ``theta`` radians:
    half-extents ``sqrt(rx^2 cos^2 t + ry^2 sin^2 t)`` and ``sqrt(rx^2 sin^2 t + ry^2 cos^2 t)``."""
    cos, sin = math.cos(theta), math.sin(theta)
    half_w, half_h = math.hypot(rx * cos, ry * sin), math.hypot(rx * sin, ry * cos)
    return [cx - half_w, cy - half_h, cx + half_w, cy + half_h]


def shapes_annotation(shapes: Iterable[tuple[list[float] | None, str, str]], where: str,
                      frame: tuple[float, float] | None = None) -> Annotation:
    """The :class:`~localizer.data.readers.base.Annotation` of an image's shapes, each ``(box or None, label,
    kind)``: the shapes with an extent give the boxes; those without (points, lines) are left out.

    Raises:
        AnnotationError: ``no-box``, naming ``where``, when every shape is of a kind without an extent.
    """
    boxes, labels, other = [], [], []
    for box, label, kind in shapes:
        if box is None:
            other.append(kind)
            continue
        boxes.append(box)
        labels.append(label)
    if other and not boxes:
        raise AnnotationError("no-box", f"{where}: only {', '.join(sorted(set(other)))} shapes, none with an extent "
                                        f"(a rectangle, polygon, circle or ellipse)")
    return Annotation(np.array(boxes, dtype=np.float64).reshape(-1, 4), tuple(labels), frame)
