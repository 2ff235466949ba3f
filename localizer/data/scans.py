"""A scan done once and kept in a folder, for every later step of a run to read.

Decoding every photo is the slow part of reading a data set (13 s for the 2,481 lion photos on one
core), so a run does it once: notebook 01 (or ``run``'s choice of the ``auto`` profile, or
:meth:`localizer.engine.run.Run.create` when given none) scans the data
(:func:`localizer.data.validation.scan_dataset`, every box kept) and saves it; the split, the ``auto``
profile and the run folder read it back (:func:`load_scan`). Three files:

===================  =======================================================================
``scan.json``        how the data was read (:data:`SCAN_FIELDS`), the format found, the fingerprint
``scan.csv``         the usable photos (:attr:`ScanResult.table`), exactly as scanned
``data_report.csv``  every photo found, ``ok`` or ``skipped`` with the reason
===================  =======================================================================

:func:`scan_for` reuses the scan saved in a folder while it is of the same data, read the same way,
and no file of the data folder has changed since (:func:`data_fingerprint`); otherwise it scans again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from localizer.boxes import ALL_BOXES_COLUMN
from localizer.data.validation import REPORT_COLUMNS, ScanResult, scan_dataset
from localizer.files import write_csv, write_json

#: The recipe's fields that say how a data folder is read: what a scan depends on (and nothing else of the recipe).
SCAN_FIELDS = ("data", "format", "oxford_box", "classes")
SCAN_INFO, SCAN_TABLE, DATA_REPORT = "scan.json", "scan.csv", "data_report.csv"
#: How ``scan.csv`` is read back so that the table equals the one scanned (hashes stay text).
_TABLE_TYPES = {**dict.fromkeys(["file", "path", "format", "dhash", ALL_BOXES_COLUMN], "str"),
                **dict.fromkeys(["width", "height", "n_boxes", "dup_group"], "int64"),
                **dict.fromkeys(["xmin", "ymin", "xmax", "ymax"], "float64")}


def data_fingerprint(root: Path | str) -> str:
    """A SHA-256 over every file under ``root`` (its path relative to ``root``, size and modification time, in
    path order): it changes when a photo or an annotation is added, removed, replaced or edited."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def scan_for(data: Path | str, fmt: str = "auto", oxford_box: str = "animal", classes: str | None = None,
             folder: Path | str | None = None, progress: bool = True) -> ScanResult:
    """The scan of ``data`` read as ``fmt``, ``oxford_box`` and ``classes`` (see
    :func:`localizer.data.validation.scan_dataset`; every box of a photo kept, for any head): the one saved in
    ``folder`` when it is of the same data read the same way and the data is unchanged
    (:func:`data_fingerprint`), else a new scan (not saved: :func:`save_scan`).

    Raises:
        as :func:`localizer.data.validation.scan_dataset`.
    """
    settings = {"data": os.path.abspath(data), "format": fmt, "oxford_box": oxford_box, "classes": classes}
    if folder is not None and (Path(folder) / SCAN_INFO).is_file():
        saved = load_scan(folder)
        if saved.settings == settings and saved.fingerprint == data_fingerprint(settings["data"]):
            return saved
    fingerprint = data_fingerprint(settings["data"]) if Path(settings["data"]).is_dir() else ""
    scan = scan_dataset(data, fmt=fmt, oxford_box=oxford_box, classes=classes, progress=progress, all_boxes=True)
    scan.fingerprint = fingerprint  # taken before the scan: a file changed during it makes the next one scan again
    return scan


def save_scan(scan: ScanResult, folder: Path | str) -> Path:
    """Write ``scan`` into ``folder`` (the three files of the module docstring, replacing a scan saved there
    before; ``scan.json`` removed first and written last, so that a save cut short leaves no scan to read
    back); returns the folder."""
    folder = Path(folder)
    (folder / SCAN_INFO).unlink(missing_ok=True)
    write_csv(scan.table, folder / SCAN_TABLE, replace=True)
    scan.write_report(folder / DATA_REPORT, overwrite=True)
    write_json(folder / SCAN_INFO, {"settings": scan.settings, "format": scan.format, "fingerprint": scan.fingerprint,
                                    "photos": len(scan.report), "usable": len(scan.table)}, replace=True)
    return folder


def load_scan(folder: Path | str) -> ScanResult:
    """The scan :func:`save_scan` wrote into ``folder``, equal to the one scanned.

    Raises:
        FileNotFoundError: ``folder`` holds no scan (the message says what makes one).
    """
    folder = Path(folder)
    if not (folder / SCAN_INFO).is_file():
        raise FileNotFoundError(f"{folder} holds no scan of the data ({SCAN_INFO}): notebook 01 scans the data and "
                                "saves it there (or give notebook 02 the run_dir notebook 01 used)")
    info = json.loads((folder / SCAN_INFO).read_text())
    table = pd.read_csv(folder / SCAN_TABLE, dtype=_TABLE_TYPES, keep_default_na=False)  # floats read back exactly
    report = pd.read_csv(folder / DATA_REPORT, dtype="str", keep_default_na=False)
    orphan = report["status"] == "orphan"  # the labels without a photo, after the photos
    orphans, report = report.loc[orphan, ["file", "reason"]].reset_index(drop=True), report[~orphan]
    for column in ("export_split", "note"):  # written only when some photo has one
        report[column] = report.get(column, "")
    report["code"] = report["reason"].str.partition(":")[0]  # the reason is "code: detail"
    report["dup_group"] = pd.to_numeric(report["dup_group"].replace("", None)).astype("Int64")
    report["twin_box_iou"] = pd.to_numeric(report["twin_box_iou"].replace("", None)).astype("float64")
    columns = ["file", "status", "code", "reason", "export_split", "note", *REPORT_COLUMNS[-2:]]
    return ScanResult(root=Path(info["settings"]["data"]), format=info["format"], table=table,
                      report=report[columns].reset_index(drop=True), orphans=orphans, settings=info["settings"],
                      fingerprint=info["fingerprint"])
