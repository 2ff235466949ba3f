"""The ``yolo`` layout: ``images/`` beside ``labels/`` (possibly under split folders such as
``train/``, or with split folders inside, ``images/train/``); one ``labels/NAME.txt`` per
``images/NAME.jpg`` with lines ``class cx cy w h`` normalized to [0, 1]. CVAT's "YOLO 1.1" export
(Darknet: ``obj.names``, ``obj.data``, ``train.txt`` and ``obj_train_data/`` with each image's
``.txt`` beside it) reads too. A polygon line (YOLO segmentation export) gives the polygon's extent;
a pose line gives its box (:func:`yolo_annotation`). The classes are integer ids; a split folder
(``train/``, ``valid/``, ``obj_train_data/``) gives the photo's export split. An image elsewhere
under the folder is listed as ``missing-annotation``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from localizer.boxes import cxcywh_to_xyxy, denormalize_boxes
from localizer.data.readers.base import (LABEL_IDS, NORMALIZED, Annotation, AnnotationError, DataFormatError,
                                         Item, Reader, images_under, parse_number, read_text)
from localizer.data.readers.paths import describe_folder, export_split, unlisted_images

#: Files that mark a Darknet-style export (CVAT "YOLO 1.1"), with each ``.txt`` beside its image.
DARKNET_MARKERS = ("obj.names", "obj.data")


def kpt_shape(root: Path) -> tuple[int, int] | None:
    """The ``kpt_shape: [k, d]`` (k keypoints of d = 2 (x y) or 3 (x y visibility) values) of the
    dataset's YAML (``data.yaml`` or any ``*.yaml`` / ``*.yml`` in ``root``), or None when none states it.

    Raises:
        DataFormatError: a ``kpt_shape`` that is not two positive integers with d in (2, 3).
    """
    for path in sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and "kpt_shape" in data:
            shape = data["kpt_shape"]
            if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) and v > 0 for v in shape)
                    and shape[1] in (2, 3)):
                raise DataFormatError(f"{path}: kpt_shape {shape!r} is not [keypoints, 2 or 3]")
            return int(shape[0]), int(shape[1])
    return None


def _darknet_folders(root: Path) -> list[Path]:
    """The ``obj_*_data`` folders of a CVAT "YOLO 1.1" export at ``root`` (or one level down)."""
    marked = [p.parent for name in DARKNET_MARKERS for p in [*root.glob(name), *root.glob(f"*/{name}")]]
    return sorted({f for folder in marked for f in folder.glob("obj_*_data") if f.is_dir()})


#: Text files beside the labels that are no label: the class names (LabelImg, Label Studio).
NOT_LABELS = ("classes.txt",)


def _orphans(labels: Path, claimed: set[Path], root: Path, photos: str) -> list[Item]:
    """The label files under the folder ``labels`` that no photo claims, as :meth:`Item.orphan`; ``photos``
    says where their photos were looked for."""
    return [Item.orphan(label, f"no photo for {label.relative_to(root).as_posix()}: no image named "
                               f"{label.stem}.* {photos}")
            for label in sorted(labels.rglob("*.txt")) if label not in claimed and label.name not in NOT_LABELS]


def _items(root: Path) -> list[Item]:
    shape = kpt_shape(root)
    items, orphans = [], []
    for images_dir in sorted(p for p in root.rglob("images") if p.is_dir()):
        labels_dir = images_dir.parent / "labels"
        if not labels_dir.is_dir():
            continue
        found = [Item(image, labels_dir / image.relative_to(images_dir).with_suffix(".txt"), shape,
                      export_split(image, root)) for image in images_under(images_dir)]
        items += found
        where = f"in {images_dir.relative_to(root).as_posix()}/"
        orphans += _orphans(labels_dir, {it.annotation for it in found}, root, where)
    for folder in _darknet_folders(root):
        found = [Item(image, image.with_suffix(".txt"), shape, export_split(image, root))
                 for image in images_under(folder)]
        items += found
        orphans += _orphans(folder, {it.annotation for it in found}, root, "beside it")
    if not items and not orphans and not is_yolo(root):
        raise DataFormatError(f"{root}: no images/ folder beside a labels/ folder, and no CVAT 'YOLO 1.1' export "
                              f"(obj.names with obj_train_data/); found {describe_folder(root)}")
    return items + unlisted_images(root, {it.image for it in items}, "an images/ folder beside labels/ "
                                                                     "(or a CVAT obj_*_data/ folder)") + orphans


def _line_box(values: list[float], shape: tuple[int, int] | None, where: str, count: int) -> list[float]:
    """The normalized xyxy box of one YOLO line's values (after the class): see :func:`yolo_annotation`."""
    n = len(values)
    if n == 4 or (shape is not None and n == 4 + shape[0] * shape[1]) or (
            shape is None and n >= 7 and n % 2 == 1 and (n - 4) % 3 == 0):
        return list(cxcywh_to_xyxy(np.array(values[:4]))[0])
    if shape is None and n >= 6 and n % 2 == 0:
        xs, ys = values[0::2], values[1::2]
        return [min(xs), min(ys), max(xs), max(ys)]
    expected = (f"'class cx cy w h' or a pose line of 1 + 4 + {shape[0]} x {shape[1]} = {5 + shape[0] * shape[1]} "
                f"fields (kpt_shape {list(shape)} in the dataset's YAML)" if shape is not None else
                "'class cx cy w h', a polygon 'class x1 y1 ... xm ym' (m >= 3) or a pose line "
                "'class cx cy w h' + k keypoints 'x y visibility'")
    raise AnnotationError("unparsable-annotation", f"{where}: expected {expected}, got {count} fields")


def yolo_annotation(text: str, width: int, height: int, name: str = "label",
                    kpt_shape: tuple[int, int] | None = None) -> Annotation:
    """Parse YOLO label text into an :class:`Annotation` on a ``width`` x ``height`` image.

    A line is ``class`` and n normalized values; blank lines are ignored. Which kind a line is, as
    Ultralytics decides it (``ultralytics.data.utils.verify_image_label``):

    * n = 4: a box ``cx cy w h``;
    * with the dataset's ``kpt_shape = (k, d)`` (:func:`kpt_shape`): n = 4 + k d is a pose line whose
      box is its first four values (the keypoints ``x y`` or ``x y visibility`` follow); any other
      n is reported;
    * without it, by the count: n = 2m, m >= 3 is a polygon ``x1 y1 ... xm ym`` whose extent is the
      box; odd n = 4 + 3k is a pose line with k ``x y visibility`` keypoints; anything else is
      reported. Ambiguity: a pose line with ``x y`` keypoints (n = 4 + 2k) or with an even number
      of ``x y visibility`` keypoints has an even n too and is read as a polygon, as Ultralytics
      reads it without ``kpt_shape``; a pose dataset must state its ``kpt_shape`` in its YAML.

    The labels are the class ids (e.g. ``"0"``; a class written as a float, as ``np.savetxt`` writes
    ``1.000000000000000000e+00``, is the integer it holds, as Ultralytics reads it); there is no frame
    (normalized boxes fit any size).

    Returns:
        ``boxes`` ``(K, 4)`` pixel xyxy, ``labels`` the K class ids, ``frame`` None.

    Raises:
        AnnotationError: ``unparsable-annotation`` (a line of no kind above, not a number, a class that is
            no whole number) or ``nan-box``.
    """
    boxes, labels = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{name} line {number}"
        values = [parse_number(v, where) for v in fields[1:]]
        boxes.append(_line_box(values, kpt_shape, where, len(fields)))
        labels.append(_class_id(fields[0], where))
    normalized = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return Annotation(denormalize_boxes(normalized, width, height), tuple(labels), written_in=NORMALIZED)


def _class_id(text: str, where: str) -> str:
    """A YOLO class field as the integer id it holds (``"1.000000000000000000e+00"`` -> ``"1"``).

    Raises:
        AnnotationError: ``unparsable-annotation``: not a number, or not a whole one.
    """
    value = parse_number(text, f"{where} class")
    if not value.is_integer() or value < 0:
        raise AnnotationError("unparsable-annotation", f"{where}: class {text!r} is not a class id (a whole "
                                                       f"number >= 0, the class's line in the class names)")
    return str(int(value))


def parse_yolo_label(text: str, width: int, height: int, name: str = "label") -> np.ndarray:
    """Parse YOLO label text into ``(K, 4)`` pixel xyxy boxes for a ``width`` x ``height`` image
    (the boxes of :func:`yolo_annotation`, without ``kpt_shape``).

    Raises:
        AnnotationError: ``unparsable-annotation`` (wrong field count, not a number) or ``nan-box``.
    """
    return yolo_annotation(text, width, height, name).boxes


def _parse(item: Item, width: int, height: int) -> Annotation:
    return yolo_annotation(read_text(item.annotation), width, height, item.annotation.name, item.payload)


def is_yolo(root: Path) -> bool:
    """True when ``root`` holds an ``images/`` folder beside a ``labels/`` folder (at any depth), or
    is a CVAT "YOLO 1.1" export (:data:`DARKNET_MARKERS` with ``obj_*_data/`` folders)."""
    beside_labels = any((p.parent / "labels").is_dir() for p in root.rglob("images") if p.is_dir())
    return beside_labels or bool(_darknet_folders(root))


READER = Reader("yolo", _items, _parse, lambda root: LABEL_IDS)
