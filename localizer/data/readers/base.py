"""What every dataset reader shares: the items found in a folder, the annotation parsed for each
(:class:`Annotation`: boxes, their classes, the frame they were drawn on), the :class:`Reader`
interface and the errors of a bad folder or a bad annotation."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from localizer.errors import ConfigError, DataError
from localizer.data.imageio import is_image_file

#: Label kinds (:attr:`Reader.label_kind`): integer class ids (YOLO) or class names (VOC, COCO, CSV).
LABEL_IDS, LABEL_NAMES = "ids", "names"
#: Units an annotation file writes its coordinates in (:attr:`Annotation.written_in`).
PIXELS, NORMALIZED = "pixels", "normalized"
#: The reason of a label file whose photo is not there (:attr:`Item.is_orphan`).
NO_PHOTO = "no-photo"


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
    already read from a shared annotation file (COCO, CSV) or the dataset's settings (YOLO
    ``kpt_shape``). ``split`` is the split the export put the photo in (``train``, ``val`` or
    ``test``, see :func:`localizer.data.readers.paths.export_split`; ``""`` when it has none).
    ``problem`` is why the item cannot be used, found while listing (an image named by two
    annotations, an annotation matching two images, a file named that is not there): the error
    :func:`localizer.data.checking.check_item` reports instead of parsing. A label file whose photo
    is not there is an item of its own (:meth:`orphan`): ``image`` is the label file, ``problem`` says
    which photo is missing.
    """

    image: Path
    annotation: Path | None
    payload: Any = field(default=None, compare=False)
    split: str = field(default="", compare=False)
    problem: DataError | None = field(default=None, compare=False)

    @classmethod
    def orphan(cls, label: Path, detail: str, reason: str = NO_PHOTO) -> Item:
        """A label file (or a part of a shared annotation file) whose photo is not there, ``detail``
        saying which photo it names and where it was looked for; or (``reason``
        ``unparsable-annotation``) one that cannot be read, so that its photos are unknown."""
        return cls(label, label, problem=AnnotationError(reason, detail))

    @property
    def is_orphan(self) -> bool:
        """True for a label without a photo (:meth:`orphan`): the item's "image" is its label file."""
        return self.annotation is not None and self.image == self.annotation


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
        difficult: K flags, True for a VOC object marked ``<difficult>1</difficult>`` (which the VOC
            devkit leaves out of evaluation); None when the format has no such mark. The primary
            box is chosen among the others where there is one
            (:func:`localizer.data.checking.check_item`).
        written_in: the unit of the file's coordinates: :data:`PIXELS` (VOC, COCO, CSV, ...; checked for
            normalized values written by mistake, :func:`localizer.data.readers.frames.boxes_in_image`)
            or :data:`NORMALIZED` (YOLO, whose boxes the reader has already scaled to the photo).
    """

    boxes: np.ndarray
    labels: tuple[str, ...] | None = None
    frame: tuple[float, float] | None = None
    difficult: tuple[bool, ...] | None = None
    written_in: str = PIXELS

    def __post_init__(self):
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        object.__setattr__(self, "boxes", boxes)
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
            if len(self.labels) != len(boxes):
                raise ValueError(f"{len(self.labels)} labels for {len(boxes)} boxes")
        if self.difficult is not None:
            object.__setattr__(self, "difficult", tuple(bool(d) for d in self.difficult))
            if len(self.difficult) != len(boxes):
                raise ValueError(f"{len(self.difficult)} difficult flags for {len(boxes)} boxes")

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
        difficult = None if self.difficult is None else tuple(d for d, k in zip(self.difficult, keep) if k)
        return Annotation(self.boxes[keep], kept, self.frame, difficult, self.written_in)

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


def class_key(label: str) -> str:
    """The form in which labels and class filters are compared: whitespace trimmed, lower case, and
    an integer id without leading zeros (``" Cat "`` -> ``"cat"``, ``"02"`` -> ``"2"``)."""
    text = str(label).strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text.lower()


def images_under(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively, sorted)."""
    # A dangling symlink or a folder with an image name is listed too, so that check-data reports it
    # (``unreadable``) instead of dropping it silently; FIFOs and devices are left out (opening blocks).
    return sorted(p for p in folder.rglob("*")
                  if is_image_file(p) and (p.is_file() or p.is_dir() or not p.exists()))


def mentions_keys(path: Path, keys: tuple[str, ...], chunk: int = 1 << 20) -> bool:
    """True when the JSON file ``path`` has every one of ``keys`` as a key (``"key":``) somewhere: the
    whole file is read, in chunks, until they are all found, so neither the order of the keys nor the
    file's size matters (a COCO file over 1 MB with sorted keys holds ``"annotations"`` first). False for
    a file that cannot be read as UTF-8 text."""
    wanted = {key: re.compile(rf'"{re.escape(key)}"\s*:') for key in keys}
    tail = ""
    try:
        with path.open(encoding="utf-8") as f:
            while wanted and (text := f.read(chunk)):
                window = tail + text
                wanted = {key: pattern for key, pattern in wanted.items() if not pattern.search(window)}
                tail = window[-(max(map(len, keys), default=0) + 64):]
    except (OSError, UnicodeDecodeError):
        return False
    return not wanted


def read_json(path: Path) -> Any:
    """The parsed JSON file ``path``.

    Raises:
        ValueError: not readable UTF-8 JSON (the message names the reason).
    """
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read it: {exc}") from exc


def read_text(path: Path) -> str:
    """An annotation file's text (UTF-8).

    Raises:
        AnnotationError: ``missing-annotation`` or ``unparsable-annotation``.
    """
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise AnnotationError("missing-annotation", f"no annotation file {path.name}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError("unparsable-annotation", f"cannot read {path.name}: {exc}") from exc


def parse_number(text: str, where: str) -> float:
    """A finite coordinate from annotation text; ``where`` names the place for the message.

    Raises:
        AnnotationError: ``unparsable-annotation`` (not a number) or ``nan-box``.
    """
    try:
        value = float(text)
    except (TypeError, ValueError) as exc:
        raise AnnotationError("unparsable-annotation", f"{where}: {text!r} is not a number") from exc
    if not math.isfinite(value):
        raise AnnotationError("nan-box", f"{where}: coordinate {text!r} is NaN or infinite")
    return value


def frame_size(width: Any, height: Any) -> tuple[float, float] | None:
    """``(width, height)`` when both are positive finite numbers, else None (frame unknown)."""
    try:
        w, h = float(width), float(height)
    except (TypeError, ValueError):
        return None
    return (w, h) if math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0 else None
