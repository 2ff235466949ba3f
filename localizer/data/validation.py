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
``annotation-size-mismatch`` the annotation states a landscape image size for a portrait photo (or the
                       reverse) that the photo's EXIF orientation does not explain: its boxes would be
                       stretched (see :func:`localizer.data.readers.boxes_in_image`)
``ambiguous-annotation`` the image and its annotation do not pair one to one (two COCO ``images``
                       entries with one id or one file, one XML fitting two images): the detail
                       names both entries; no box is merged or replaced
``normalized-coordinates`` a format that takes pixels holds coordinates all within [0, 1.5] on a photo
                       at least 16 px a side: normalized values written by mistake (see
                       :func:`localizer.data.readers.frames.check_units`), never read as a box of a pixel
=====================  ============================================================================

Label files whose photo is not there (a YOLO ``labels/x.txt`` without ``images/x.*``, a VOC XML, a
Labelme JSON, COCO annotations whose ``image_id`` no image has) are listed too, as
:attr:`ScanResult.orphans` (``no-photo``), in the summary and in the report CSV (status ``orphan``).

Besides the reason, the report records the split an export put the photo in (``export_split``:
``train``, ``val``, ``test``; see :func:`localizer.data.readers.export_split`) and a ``note`` on a
judgement call (a VOC photo whose primary box was chosen among the objects not marked difficult).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from localizer.boxes import ALL_BOXES_COLUMN, BOX_TOLERANCE, boxes_text, normalized_boxes
from localizer.data.checking import check_item
from localizer.data.download import display_path
from localizer.data.duplicates import NEAR_DUPLICATE_BITS, TWIN_BOX_IOU, duplicate_groups, twin_box_iou
from localizer.files import write_csv
from localizer.progress import duration_text, progress_thread_map
from localizer.data.readers import detect_format, get_reader, one_item_per_image, resolve_classes
from localizer.data.readers.classes import check_known_classes, known_classes

TABLE_COLUMNS = ["file", "path", "width", "height", "xmin", "ymin", "xmax", "ymax", "n_boxes", "format"]
REPORT_COLUMNS = ["file", "status", "reason", "dup_group", "twin_box_iou"]
#: Report columns written only when some photo has a value (so reports of other data stay as they were).
OPTIONAL_REPORT_COLUMNS = ["export_split", "note"]
#: Columns the scan adds to the table for the near-duplicates (see :mod:`localizer.data.duplicates`).
DUPLICATE_COLUMNS = ["dhash", "dup_group"]
#: Groups of twins whose boxes disagree that :meth:`ScanResult.summary` names (the CSV has all).
SUMMARY_TWINS = 10


@dataclass
class ScanResult:
    """What :func:`scan_dataset` found.

    Attributes:
        root: the dataset folder.
        format: the format read.
        table: usable images, columns :data:`TABLE_COLUMNS` and :data:`DUPLICATE_COLUMNS`: ``file``
            (relative to root, POSIX), ``path`` (absolute), ``width``/``height`` (pixels, as
            displayed), ``xmin..ymax`` (primary box, pixel xyxy, continuous), ``n_boxes`` (boxes of
            the chosen classes, crowd boxes left out), ``format``, ``dhash`` (64-bit difference hash, 16 hex digits) and
            ``dup_group`` (0, or the number of the photo's group of near-duplicates). Sorted by
            ``file``.
        report: every image found, columns ``file``, ``status`` (``ok``/``skipped``), ``code``,
            ``reason`` (``code: detail``, empty when ok), ``export_split`` (the export's own split,
            ``train``/``val``/``test``, empty without one), ``note`` (a judgement call such as the
            VOC difficult rule, else empty), ``dup_group`` (empty for a photo without
            near-duplicates) and ``twin_box_iou`` (the lowest IoU of its primary box with its
            twins' boxes; empty without twins).
        orphans: the label files without a photo, columns ``file`` (the label file, relative to root)
            and ``reason`` (``no-photo: detail``, naming the photo looked for).
        settings: how the data was read, the recipe's fields of the same names: ``data`` (``root``),
            ``format`` (as asked: ``auto`` or a format), ``oxford_box`` and ``classes``.
        fingerprint: :func:`localizer.data.scans.data_fingerprint` of ``root`` before the scan, or
            empty when not taken (then a saved scan is never reused).
    """

    root: Path
    format: str
    table: pd.DataFrame
    report: pd.DataFrame
    orphans: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["file", "reason"]))
    settings: dict = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def skipped_counts(self) -> pd.Series:
        """Number of skipped images per reason code, most frequent first."""
        skipped = self.report[self.report["status"] == "skipped"]
        return skipped["code"].value_counts()

    def summary(self) -> str:
        """A few lines for people: found, usable, skipped per reason, images with several boxes."""
        lines = [
            f"data:    {display_path(self.root)} (format {self.format})",
            f"found:   {len(self.report)} images" + (f", {len(self.orphans)} labels without a photo"
                                                       if len(self.orphans) else ""),
            f"usable:  {len(self.table)}",
            f"skipped: {int((self.report['status'] == 'skipped').sum())}",
        ]
        lines += [f"  {code}: {count}" for code, count in self.skipped_counts.items()]
        lines += self._orphan_lines()
        several = int((self.table["n_boxes"] > 1).sum()) if len(self.table) else 0
        lines.append(f"several boxes (largest kept as the primary box): {several}")
        lines += self._export_lines()
        twins = self.table[self.table["dup_group"] > 0]
        lines.append(f"near-duplicates (dHash within {NEAR_DUPLICATE_BITS} of 64 bits; each group is kept in one "
                     f"split): {twins['dup_group'].nunique()} groups, {len(twins)} photos")
        report = self.report.set_index("file")
        disagree = twins[report.loc[twins["file"], "twin_box_iou"].to_numpy() < TWIN_BOX_IOU]
        groups = list(disagree.groupby("dup_group")["file"])
        lines.append(f"  twins whose boxes disagree (box IoU < {TWIN_BOX_IOU}): {len(groups)} groups")
        for _, files in groups[:SUMMARY_TWINS]:
            lowest = report.loc[files, "twin_box_iou"].min()
            lines.append(f"    {' ~ '.join(files)} (box IoU {lowest:.2f})")
        if len(groups) > SUMMARY_TWINS:
            lines.append(f"    ... and {len(groups) - SUMMARY_TWINS} more (see the report CSV)")
        return "\n".join(lines)

    def _orphan_lines(self) -> list[str]:
        """The labels without a photo, the first :data:`SUMMARY_TWINS` by name (the report CSV has all)."""
        if not len(self.orphans):
            return []
        lines = [f"labels without a photo: {len(self.orphans)}"]
        lines += [f"  {row.file}: {row.reason}" for row in self.orphans.head(SUMMARY_TWINS).itertuples()]
        more = len(self.orphans) - SUMMARY_TWINS
        return lines + ([f"  ... and {more} more (see the report CSV)"] if more > 0 else [])

    def _export_lines(self) -> list[str]:
        """Summary lines on the export's own split and on the VOC difficult rule (none when unused)."""
        lines = []
        ok = self.report[self.report["status"] == "ok"]
        if (self.report["export_split"] != "").any():
            counts = ok["export_split"].replace("", "(none)").value_counts()
            lines.append("export split (the export's own folders), usable photos: "
                         + ", ".join(f"{name} {n}" for name, n in counts.items()))
        difficult = int(ok["note"].str.startswith("primary box chosen among").sum())
        if difficult:
            lines.append(f"VOC difficult objects: {difficult} photos have their primary box chosen among the "
                         f"objects not marked difficult (see the report's note)")
        return lines

    def write_report(self, path: Path | str, overwrite: bool = False) -> Path:
        """Write the report as CSV with columns :data:`REPORT_COLUMNS`, then those of
        :data:`OPTIONAL_REPORT_COLUMNS` that some photo has a value in: a row per image found, then one
        per label without a photo (status ``orphan``); returns the path.

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is False.
        """
        extra = [c for c in OPTIONAL_REPORT_COLUMNS if c in self.report and (self.report[c] != "").any()]
        orphans = self.orphans.assign(status="orphan").reindex(columns=REPORT_COLUMNS + extra, fill_value="")
        table = pd.concat([self.report[REPORT_COLUMNS + extra], orphans], ignore_index=True) if len(orphans) else \
            self.report[REPORT_COLUMNS + extra]
        return write_csv(table, path, replace=overwrite)


def scan_dataset(
    root: Path | str,
    fmt: str = "auto",
    oxford_box: str = "animal",
    classes: str | None = None,
    max_pixels: int | None = None,
    tolerance: float = BOX_TOLERANCE,
    workers: int | None = None,
    progress: bool = True,
    all_boxes: bool = False,
) -> ScanResult:
    """Read and validate every image of a dataset folder.

    Args:
        root: dataset folder.
        fmt: one of :data:`localizer.data.readers.FORMATS` or ``"auto"`` (:func:`detect_format`).
        oxford_box: ``"animal"`` (trimap box) or ``"head"`` (XML head box), for ``oxford-pets``.
        classes: None (every box) or a class filter, e.g. ``"animals"``, ``"cat,dog"`` or YOLO ids
            ``"0,2"`` (see :func:`localizer.data.readers.parse_classes`): boxes of other classes are
            dropped before the primary box is chosen.
        max_pixels: decompression-bomb limit (see :func:`localizer.data.imageio.load_rgb`).
        tolerance: share of the image side a box may exceed the image by and be clipped.
        workers: decoding threads (Pillow releases the GIL while decoding); default: all cores.
        progress: show a tqdm progress bar, and print one line when done (how many photos, how long).
        all_boxes: also keep every box of each photo, in a column :data:`ALL_BOXES_COLUMN` (text, see
            :func:`localizer.boxes.boxes_text`), for a recipe that trains on every annotated animal.

    Returns:
        A :class:`ScanResult`.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DataFormatError: the format is unknown or cannot be detected; ``classes`` is malformed, does
            not fit the format (:func:`localizer.data.readers.resolve_classes`) or names a class the
            data does not have (checked before any photo is decoded,
            :func:`localizer.data.readers.classes.check_known_classes`).
    """
    started = time.perf_counter()
    root = Path(os.path.abspath(root))  # not resolve(): a data folder behind a link keeps its name
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    asked, fmt = fmt, detect_format(root) if fmt == "auto" else fmt
    reader = get_reader(fmt, oxford_box=oxford_box)
    items, orphans, wanted = _listed(root, reader, classes)
    results = progress_thread_map(
        lambda it: check_item(it, reader, max_pixels, tolerance, wanted, keep_boxes=all_boxes), items, show=progress,
        max_workers=workers or os.cpu_count() or 1, desc=f"checking {root.name}", unit="img",
    )
    table, report = _tables(*_rows(items, results, root, fmt, all_boxes), all_boxes)
    settings = {"data": str(root), "format": asked, "oxford_box": oxford_box, "classes": classes}
    if progress:
        print(f"scan: {len(items):,} photos of {display_path(root)} decoded and checked in "
              f"{duration_text(time.perf_counter() - started)}", flush=True)
    return ScanResult(root=root, format=fmt, table=table, report=report, orphans=orphans, settings=settings)


def _listed(root: Path, reader, classes: str | None) -> tuple[list, pd.DataFrame, frozenset[str] | None]:
    """What :func:`scan_dataset` knows before it decodes a photo: ``(items, orphans, wanted)``, the photos
    the reader lists (each once), the table of :attr:`ScanResult.orphans` (labels without a photo) and
    the class filter, checked once against the classes the annotations hold (a name the data does not
    have is a typo, :func:`localizer.data.readers.classes.check_known_classes`)."""
    listed = reader.list_items(root)
    orphans = pd.DataFrame([{"file": _relative(it.image, root), "reason": f"{it.problem.reason}: {it.problem.detail}"}
                            for it in listed if it.is_orphan], columns=["file", "reason"])
    items = one_item_per_image([it for it in listed if not it.is_orphan], lambda it: (it.annotation or it.image).name)
    wanted = resolve_classes(classes, reader, root)
    if wanted is not None:
        check_known_classes(classes, known_classes(items, reader))
    return items, orphans.sort_values("file", ignore_index=True), wanted


def _rows(items: list, results: list[dict], root: Path, fmt: str, all_boxes: bool) -> tuple[list[dict], list[dict]]:
    """The table's rows (usable photos) and the report's rows (every photo) of the checked ``items``."""
    table_rows, report_rows = [], []
    for item, result in zip(items, results):
        file = _relative(item.image, root)
        report_rows.append({"file": file, "status": result["status"], "code": result["code"],
                            "reason": result["reason"], "export_split": item.split, "note": result.get("note", "")})
        if result["status"] == "ok":
            row = {"file": file, "path": str(item.image), "format": fmt,
                   **{k: result[k] for k in TABLE_COLUMNS + ["dhash"] if k in result}}
            if all_boxes:
                row[ALL_BOXES_COLUMN] = boxes_text(result["boxes"])
            table_rows.append(row)
    return table_rows, report_rows


def _tables(table_rows: list[dict], report_rows: list[dict], all_boxes: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table and the report of :class:`ScanResult` from their rows, with the near-duplicates."""
    columns = TABLE_COLUMNS + ["dhash"] + ([ALL_BOXES_COLUMN] if all_boxes else [])
    table = pd.DataFrame(table_rows, columns=columns).sort_values("file", ignore_index=True)
    table = table.astype({"width": "int64", "height": "int64", "n_boxes": "int64",
                          "xmin": "float64", "ymin": "float64", "xmax": "float64", "ymax": "float64"})
    table["dup_group"] = duplicate_groups(table["dhash"].tolist())
    report = pd.DataFrame(report_rows, columns=["file", "status", "code", "reason", "export_split", "note"])
    twin_iou = pd.Series(twin_box_iou(normalized_boxes(table), table["dup_group"].to_numpy()), index=table["file"])
    report["dup_group"] = report["file"].map(table.set_index("file")["dup_group"].where(lambda g: g > 0))
    report["dup_group"] = report["dup_group"].astype("Int64")
    report["twin_box_iou"] = report["file"].map(twin_iou).round(4)
    report = report.sort_values("file", ignore_index=True)
    return table, report


def _relative(path: Path, root: Path) -> str:
    # Lexically first: a symlinked image keeps its name under root (resolving it would give an
    # absolute path outside root, and the split would then depend on where the data lies).
    for candidate in (path, path.resolve()):
        try:
            return candidate.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()
