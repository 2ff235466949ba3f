"""Validate a dataset folder: decode every image, parse every annotation, keep the usable ones.

:func:`scan_dataset` gives one table row per usable image (the primary box in pixel xyxy) and a
report row per image found, ``ok`` or ``skipped`` with the reason. Nothing raises on a bad file: it
is reported and skipped.

Skip reasons (the ``code`` column; the CSV's ``reason`` is ``code: detail``):

=====================  ============================================================================
``unreadable``         the file cannot be opened (missing, no permission)
``not-an-image``       the content is no image format Pillow reads
``corrupt``            the decoder failed on the data
``truncated``          the image data ends early
``decompression-bomb`` more pixels than the limit (Pillow's ``MAX_IMAGE_PIXELS`` by default)
``missing-annotation`` no annotation file for the image
``no-box``             the annotation is empty (no box)
``unparsable-annotation`` a line or file that cannot be parsed
``nan-box``            a NaN or infinite coordinate
``empty-box``          zero or negative width or height
``box-outside-image``  an edge outside the image by more than ``BOX_TOLERANCE`` of its side (a box
                       within the tolerance is clipped and kept)
=====================  ============================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.contrib.concurrent import thread_map

from .boxes import BOX_TOLERANCE, BoxError, check_box, primary_box
from .imageio import ImageLoadError, load_rgb
from .readers import AnnotationError, Item, Reader, detect_format, get_reader

TABLE_COLUMNS = ["file", "path", "width", "height", "xmin", "ymin", "xmax", "ymax", "n_boxes", "format"]
REPORT_COLUMNS = ["file", "status", "reason"]


@dataclass
class ScanResult:
    """What :func:`scan_dataset` found.

    Attributes:
        root: the dataset folder.
        format: the format read.
        table: usable images, columns :data:`TABLE_COLUMNS`: ``file`` (relative to root, POSIX),
            ``path`` (absolute), ``width``/``height`` (pixels, as displayed), ``xmin..ymax``
            (primary box, pixel xyxy, continuous), ``n_boxes`` (boxes in the annotation),
            ``format``. Sorted by ``file``.
        report: every image found, columns ``file``, ``status`` (``ok``/``skipped``), ``code``,
            ``reason`` (``code: detail``, empty when ok).
    """

    root: Path
    format: str
    table: pd.DataFrame
    report: pd.DataFrame

    @property
    def skipped_counts(self) -> pd.Series:
        """Number of skipped images per reason code, most frequent first."""
        skipped = self.report[self.report["status"] == "skipped"]
        return skipped["code"].value_counts()

    def summary(self) -> str:
        """A few lines for people: found, usable, skipped per reason, images with several boxes."""
        lines = [
            f"data:    {self.root} (format {self.format})",
            f"found:   {len(self.report)} images",
            f"usable:  {len(self.table)}",
            f"skipped: {int((self.report['status'] == 'skipped').sum())}",
        ]
        lines += [f"  {code}: {count}" for code, count in self.skipped_counts.items()]
        several = int((self.table["n_boxes"] > 1).sum()) if len(self.table) else 0
        lines.append(f"several boxes (largest kept as the primary box): {several}")
        return "\n".join(lines)

    def write_report(self, path: Path | str) -> Path:
        """Write the report as CSV with columns ``file,status,reason``; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.report[REPORT_COLUMNS].to_csv(path, index=False)
        return path


def check_item(
    item: Item,
    reader: Reader,
    max_pixels: int | None = None,
    tolerance: float = BOX_TOLERANCE,
) -> dict:
    """Decode one item's image, parse and check its boxes.

    Returns:
        A dict with ``status`` (``ok``/``skipped``), ``code``, ``reason`` and, when ok, ``width``,
        ``height``, the primary box ``xmin..ymax`` (pixel xyxy, clipped to the image) and ``n_boxes``.
        Never raises for bad data.
    """
    try:
        with load_rgb(item.image, max_pixels=max_pixels) as img:
            width, height = img.size
        boxes = reader.parse(item, width, height)
        if len(boxes) == 0:
            raise BoxError("no-box", "the annotation has no box")
        checked = np.stack([check_box(b, width, height, tolerance) for b in boxes])
    except (ImageLoadError, AnnotationError, BoxError) as exc:
        return {"status": "skipped", "code": exc.reason, "reason": f"{exc.reason}: {exc.detail}"}
    xmin, ymin, xmax, ymax = primary_box(checked)
    return {
        "status": "ok", "code": "", "reason": "", "width": width, "height": height,
        "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax, "n_boxes": len(boxes),
    }


def scan_dataset(
    root: Path | str,
    fmt: str = "auto",
    oxford_box: str = "animal",
    max_pixels: int | None = None,
    tolerance: float = BOX_TOLERANCE,
    workers: int | None = None,
    progress: bool = True,
) -> ScanResult:
    """Read and validate every image of a dataset folder.

    Args:
        root: dataset folder.
        fmt: one of :data:`localizer.readers.FORMATS` or ``"auto"`` (:func:`detect_format`).
        oxford_box: ``"animal"`` (trimap box) or ``"head"`` (XML head box), for ``oxford-pets``.
        max_pixels: decompression-bomb limit (see :func:`localizer.imageio.load_rgb`).
        tolerance: share of the image side a box may exceed the image by and be clipped.
        workers: decoding threads (Pillow releases the GIL while decoding); default: all cores.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`ScanResult`.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DataFormatError: the format is unknown or cannot be detected.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    fmt = detect_format(root) if fmt == "auto" else fmt
    reader = get_reader(fmt, oxford_box=oxford_box)
    items = reader.list_items(root)
    results = thread_map(
        lambda it: check_item(it, reader, max_pixels, tolerance), items,
        max_workers=workers or os.cpu_count() or 1, desc=f"checking {root.name}", unit="img",
        disable=not progress,
    )
    report_rows, table_rows = [], []
    for item, result in zip(items, results):
        file = _relative(item.image, root)
        report_rows.append({"file": file, "status": result["status"], "code": result["code"],
                            "reason": result["reason"]})
        if result["status"] == "ok":
            table_rows.append({"file": file, "path": str(item.image), "format": fmt,
                               **{k: result[k] for k in TABLE_COLUMNS if k in result}})
    table = pd.DataFrame(table_rows, columns=TABLE_COLUMNS).sort_values("file", ignore_index=True)
    table = table.astype({"width": "int64", "height": "int64", "n_boxes": "int64",
                          "xmin": "float64", "ymin": "float64", "xmax": "float64", "ymax": "float64"})
    report = pd.DataFrame(report_rows, columns=["file", "status", "code", "reason"])
    report = report.sort_values("file", ignore_index=True)
    return ScanResult(root=root, format=fmt, table=table, report=report)


def _relative(path: Path, root: Path) -> str:
    # Lexically first: a symlinked image keeps its name under root (resolving it would give an
    # absolute path outside root, and the split would then depend on where the data lies).
    for candidate in (path, path.resolve()):
        try:
            return candidate.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()
