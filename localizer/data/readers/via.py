"""The ``via`` layout: a VGG Image Annotator project or export JSON (Dutta & Zisserman, VIA 2) beside
its photos (or one per split folder): the project's ``_via_img_metadata``, or the exported dict itself,
maps a key to ``{"filename", "regions": [{"shape_attributes", "region_attributes"}]}`` (VIA 1 writes
``regions`` as a dict). Shapes, in the photo's pixels: ``rect`` (``x, y, width, height``, the top-left
corner and the size), ``polygon`` and ``polyline`` (``all_points_x``, ``all_points_y``: their extent),
``circle`` (``cx, cy, r``) and ``ellipse`` (``cx, cy, rx, ry``, ``theta`` in radians): their extent;
a ``point`` has no box. The class is the region attribute named ``label``, ``class``, ``name``,
``category`` or ``type`` (else the only text attribute)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localizer.data.readers.base import (LABEL_NAMES, Annotation, AnnotationError, DataFormatError, Item, Reader,
                                         parse_number)
from localizer.data.readers.jsonfiles import (ellipse_extent, find_json_files, load_entries, point_extent,
                                              shapes_annotation, shared_file_items)

#: Region attributes that name the class, in the order looked for.
LABEL_ATTRIBUTES = ("label", "class", "name", "category", "type")


def _metadata(data: Any) -> dict:
    """The image metadata of a VIA JSON: a project's ``_via_img_metadata``, or the export's dict itself."""
    metadata = data.get("_via_img_metadata", data) if isinstance(data, dict) else None
    if not isinstance(metadata, dict) or not all(
            isinstance(v, dict) and "filename" in v and "regions" in v for v in metadata.values()):
        raise TypeError("no image entries with 'filename' and 'regions'")
    return metadata


def _entries(data: Any) -> list[tuple[str, Any]]:
    return [(entry["filename"], list(entry["regions"].values()) if isinstance(entry["regions"], dict)
             else list(entry["regions"])) for entry in _metadata(data).values()]


def find_via(root: Path) -> list[Path]:
    """The VIA JSONs of ``root`` (or one per folder one level down): a project (``_via_img_metadata``) or
    an export (``filename`` and ``regions``)."""
    return find_json_files(root, ("_via_img_metadata",)) or find_json_files(root, ("filename", "regions",
                                                                                   "shape_attributes"))


def _items(root: Path) -> list[Item]:
    paths = find_via(root)
    if not paths:
        raise DataFormatError(f"{root}: no VGG Image Annotator JSON (with 'filename' and 'regions')")
    return shared_file_items(root, paths, lambda path: load_entries(path, _entries, "a VGG Image Annotator JSON"))


def _label(attributes: Any) -> str:
    if not isinstance(attributes, dict):
        return ""
    named = next((attributes[k] for k in LABEL_ATTRIBUTES if isinstance(attributes.get(k), str)), None)
    texts = [v for v in attributes.values() if isinstance(v, str)]
    return (named if named is not None else texts[0] if len(texts) == 1 else "").strip()


def _region_box(shape: dict, where: str) -> list[float] | None:
    """The pixel xyxy box of one VIA ``shape_attributes``, None for a point."""
    kind = shape.get("name")
    number = lambda key: parse_number(shape.get(key), f"{where} {key}")  # noqa: E731
    if kind == "rect":
        x, y = number("x"), number("y")
        return [x, y, x + number("width"), y + number("height")]
    if kind in ("polygon", "polyline"):
        return point_extent(shape.get("all_points_x") or [], shape.get("all_points_y") or [], where)
    if kind == "circle":
        return ellipse_extent(number("cx"), number("cy"), number("r"), number("r"))
    if kind == "ellipse":
        theta = parse_number(shape.get("theta", 0), f"{where} theta")
        return ellipse_extent(number("cx"), number("cy"), number("rx"), number("ry"), theta)
    if kind == "point":
        return None
    raise AnnotationError("unparsable-annotation", f"{where}: shape {kind!r} is not one VIA draws")


def _parse(item: Item, width: int, height: int) -> Annotation:
    return shapes_annotation(_shapes(item), f"{item.annotation.name} {item.image.name}")


def _shapes(item: Item):
    """``(box or None, label, shape name)`` of each region of a VIA image entry."""
    for number, region in enumerate(item.payload, start=1):
        where = f"{item.annotation.name} {item.image.name} region {number}"
        shape = region.get("shape_attributes") if isinstance(region, dict) else None
        if not isinstance(shape, dict):
            raise AnnotationError("unparsable-annotation", f"{where}: no shape_attributes")
        yield _region_box(shape, where), _label(region.get("region_attributes")), str(shape.get("name"))


READER = Reader("via", _items, _parse, lambda root: LABEL_NAMES)
