"""The ``oxford-pets`` layout (Parkhi et al., "Cats and Dogs", CVPR 2012): ``images/``,
``annotations/trimaps/``, ``annotations/xmls/``. Box ``animal`` (default): the tight box around the
trimap pixels that are not background (trimap value 2). Box ``head``: the head box of the VOC XML
(only some images have one). One animal per photo: no class filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from localizer.errors import ConfigError
from localizer.data.readers.base import Annotation, AnnotationError, Item, Reader, images_under
from localizer.data.readers.frames import boxes_in_image
from localizer.data.readers.voc import voc_annotation

OXFORD_BOXES = ("animal", "head")

#: Trimap value for background in the Oxford-IIIT Pet annotations (1 pet, 2 background, 3 border).
OXFORD_TRIMAP_BACKGROUND = 2


def _items(root: Path, box: str) -> list[Item]:
    if box not in OXFORD_BOXES:
        raise ConfigError(f"oxford-pets box must be one of {OXFORD_BOXES}, got {box!r}")
    folder = root / "annotations" / ("trimaps" if box == "animal" else "xmls")
    suffix = ".png" if box == "animal" else ".xml"
    return [Item(image, folder / f"{image.stem}{suffix}") for image in images_under(root / "images")]


def trimap_annotation(path: Path) -> Annotation:
    """The tight box around the non-background pixels of an Oxford-IIIT trimap, in the trimap's pixels.

    Background is value 2 (1 = pet, 3 = border; Parkhi et al., CVPR 2012, dataset README). The box
    of pixels in columns c0..c1 and rows r0..r1 is ``(c0, r0, c1 + 1, r1 + 1)`` (continuous).

    Returns:
        ``boxes`` ``(1, 4)`` pixel xyxy, ``labels`` None (no classes), ``frame`` the trimap's
        ``(width, height)``.

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
    return Annotation(box, None, (float(mask_w), float(mask_h)))


def trimap_box(path: Path, width: int, height: int) -> np.ndarray:
    """Tight pixel xyxy box ``(1, 4)`` around the non-background pixels of an Oxford-IIIT trimap
    (:func:`trimap_annotation`), put on the ``width`` x ``height`` image (no EXIF orientation) by
    :func:`boxes_in_image`: a trimap of another size with the same aspect orientation is scaled.

    Raises:
        AnnotationError: ``missing-annotation``, ``unparsable-annotation`` (not a readable PNG),
            ``no-box`` (the trimap is all background) or ``annotation-size-mismatch``.
    """
    return boxes_in_image(trimap_annotation(path), width, height)


def _parse(item: Item, width: int, height: int) -> Annotation:
    if item.annotation.suffix == ".png":
        return trimap_annotation(item.annotation)
    if not item.annotation.is_file():
        raise AnnotationError("missing-annotation", f"no head box XML {item.annotation.name}")
    return voc_annotation(item.annotation)


def is_oxford_pets(root: Path) -> bool:
    """True when ``root`` has ``annotations/trimaps/`` (checked before ``voc``: it holds VOC XMLs too)."""
    return (root / "annotations" / "trimaps").is_dir()


def reader(box: str = "animal") -> Reader:
    """The reader of the Oxford-IIIT Pet layout with the ``animal`` (trimap) or ``head`` (XML) box."""
    return Reader("oxford-pets", lambda root: _items(root, box), _parse)
