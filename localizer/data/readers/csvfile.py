"""The ``csv`` layout: a CSV with a header row naming ``filename,xmin,ymin,xmax,ymax`` (pixels,
continuous; other columns are ignored, an optional ``class`` column gives the classes); several
rows for one file are several boxes. Files are relative to the CSV's folder (or its ``images/``), as
exporters write them (:class:`~localizer.data.readers.paths.FileIndex`: backslashes, a leading ``images/``, composed or
decomposed Unicode); an image under the folder that no row names is listed as
``missing-annotation``. Roboflow's CSV export (``train/_annotations.csv``, ``valid/``, ``test/``) is
read per split folder, which gives the photo's export split.
Spreadsheet exports read too: UTF-8 with or without a byte-order mark, any line ends, a comma,
semicolon, tab or bar as delimiter (found by :class:`csv.Sniffer`) and, when the delimiter is not a
comma, decimal commas (``10,5``). A CSV that looks like boxes in another dialect is named in the
error, with what to change (:func:`csv_hint`)."""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localizer.data.readers.base import (LABEL_NAMES, Annotation, AnnotationError, DataFormatError, Item, Reader,
                                         parse_number)
from localizer.data.readers.paths import FileIndex, export_split, one_item_per_image, unlisted_images

CSV_COLUMNS = ("filename", "xmin", "ymin", "xmax", "ymax")
#: Optional CSV column with the class name of each box.
CSV_CLASS_COLUMN = "class"
#: Delimiters a CSV may use; spreadsheets in locales with a decimal comma export semicolons.
CSV_DELIMITERS = ",;\t|"
_CSV_SAMPLE_CHARS = 64 * 1024
#: A header cell naming a box coordinate in another CSV dialect (x1, y2, x, width, x_center, ...).
_COORDINATE_NAME = re.compile(
    r"((bbox|box)[_ ]?)?(x|y|w|h|cx|cy|[xy][_ ]?(min|max|center|centre)|[xy][0-9]|width|height|left|top|right|bottom)")
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d*,\d+\s*")


@dataclass(frozen=True)
class _CsvLayout:
    """A CSV in localizer's layout: its dialect and the index of each column read."""

    path: Path
    dialect: Any
    columns: dict

    @property
    def has_classes(self) -> bool:
        return CSV_CLASS_COLUMN in self.columns


@dataclass(frozen=True)
class _CsvBoxes:
    """The rows of one image: ``(line number, [xmin, ymin, xmax, ymax] text or None when the row is
    short, class)``; ``has_classes``: the CSV has a class column."""

    rows: list
    has_classes: bool


def _csv_sample(path: Path) -> str:
    """The first whole lines (up to 64 Ki characters) of a UTF-8 CSV (byte-order mark dropped).

    Raises:
        OSError, UnicodeDecodeError.
    """
    with path.open(encoding="utf-8-sig", newline="") as f:
        sample = f.read(_CSV_SAMPLE_CHARS)
        more = f.read(1)
    cut = max(sample.rfind("\n"), sample.rfind("\r"))
    return sample[:cut + 1] if more and cut > 0 else sample


def _csv_dialects(sample: str) -> list:
    """Dialects to try: the one :class:`csv.Sniffer` finds, then Excel's with each delimiter."""
    dialects = []
    try:
        dialects.append(csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS))
    except csv.Error:
        pass
    return dialects + [type("delimited", (csv.excel,), {"delimiter": d}) for d in CSV_DELIMITERS]


def _first_row(sample: str, dialect) -> list[str]:
    """The first row with a non-blank cell, cells stripped."""
    for row in csv.reader(io.StringIO(sample), dialect):
        if any(cell.strip() for cell in row):
            return [cell.strip() for cell in row]
    return []


def _csv_layout(path: Path) -> _CsvLayout | None:
    """``path`` read as a CSV whose header row names :data:`CSV_COLUMNS` (any order and case), or None."""
    try:
        sample = _csv_sample(path)
    except (OSError, UnicodeDecodeError):
        return None
    for dialect in _csv_dialects(sample):
        header = [cell.lower() for cell in _first_row(sample, dialect)]
        if all(name in header for name in CSV_COLUMNS):
            names = CSV_COLUMNS + ((CSV_CLASS_COLUMN,) if CSV_CLASS_COLUMN in header else ())
            return _CsvLayout(path, dialect, {name: header.index(name) for name in names})
    return None


def find_csv(root: Path) -> _CsvLayout | None:
    """The first CSV of ``root`` in localizer's layout (:func:`_csv_layout`), or None."""
    return next(filter(None, (_csv_layout(path) for path in sorted(root.glob("*.csv")))), None)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text.replace(",", ".") if _DECIMAL_COMMA.fullmatch(text) else text))
    except ValueError:
        return False


def _foreign_csv(path: Path) -> str | None:
    """Why ``path`` is not read although it looks like boxes (another dialect, no header row, not
    UTF-8), or None when it does not look like boxes."""
    try:
        sample = _csv_sample(path)
    except UnicodeDecodeError as exc:
        return (f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}); localizer reads CSV files "
                f"in UTF-8: save it as 'CSV UTF-8'")
    except OSError:
        return None
    first = max((_first_row(sample, d) for d in _csv_dialects(sample)), key=len)
    if len(first) >= 4 and sum(_is_number(cell) for cell in first) >= 4:
        what, fix = f"no header row; the first row is {', '.join(first)}", "add the header row"
    elif sum(bool(_COORDINATE_NAME.fullmatch(cell.lower())) for cell in first) >= 4:
        what, fix = f"columns {', '.join(first)}", "rename or convert the columns"
    else:
        return None
    names = {cell.lower() for cell in first}
    size = "; a top-left corner x, y with a width and height gives xmax = x + width, ymax = y + height" \
        if {"width", "height"} <= names or {"w", "h"} <= names else ""
    return (f"{path.name} looks like boxes in another dialect ({what}); localizer reads a header row "
            f"{','.join(CSV_COLUMNS)} (pixels: the top-left and bottom-right corners; an optional "
            f"{CSV_CLASS_COLUMN} column; delimited by commas, semicolons or tabs){size}: {fix}")


def csv_hint(root: Path) -> str | None:
    """What :func:`_foreign_csv` says about the first CSV of ``root`` that looks like boxes, or None."""
    return next(filter(None, (_foreign_csv(path) for path in sorted(root.glob("*.csv")))), None)


def find_csvs(root: Path) -> list[_CsvLayout]:
    """The CSVs of ``root`` in localizer's layout: the first of ``root`` (:func:`find_csv`); else the
    first of each folder one level down (Roboflow's CSV export: ``train/_annotations.csv``, ...)."""
    top = find_csv(root)
    if top is not None:
        return [top]
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [layout for layout in map(find_csv, folders) if layout is not None]


def _rows(layout: _CsvLayout) -> dict[str, list]:
    """The rows of the CSV by file name as written: ``name -> [(line number, values or None, class)]``.

    Raises:
        DataFormatError: not UTF-8, or not a readable CSV (the message names the file).
    """
    columns = [layout.columns[name] for name in CSV_COLUMNS]
    decimal_comma = layout.dialect.delimiter != ","
    rows: dict[str, list] = defaultdict(list)
    try:
        with layout.path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, layout.dialect)
            header = True
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if header:
                    header = False
                    continue
                cells = [row[i] if i < len(row) else None for i in columns]
                values = None if None in cells else [
                    v.replace(",", ".") if decimal_comma and _DECIMAL_COMMA.fullmatch(v) else v for v in cells[1:]]
                label = ""
                if layout.has_classes and layout.columns[CSV_CLASS_COLUMN] < len(row):
                    label = row[layout.columns[CSV_CLASS_COLUMN]].strip()
                rows[(cells[0] or "").strip()].append((reader.line_num, values, label))
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{layout.path}: not UTF-8 text ({exc.reason}); save it as 'CSV UTF-8'") from exc
    except csv.Error as exc:
        raise DataFormatError(f"{layout.path}: not a readable CSV ({exc})") from exc
    return rows


def _csv_items(layout: _CsvLayout, root: Path, index: FileIndex) -> list[Item]:
    """One item per image the CSV names; two spellings of one file in one CSV are one image."""
    folder = layout.path.parent
    bases = [folder / "images", folder] if (folder / "images").is_dir() else [folder, folder / "images"]
    found: dict[Path, list] = defaultdict(list)
    problems = {}
    for name, boxes in _rows(layout).items():
        image, problem = index.find(name, bases, layout.path.name)
        found[image] += boxes
        problems.setdefault(image, problem)
    return [Item(image, layout.path, _CsvBoxes(sorted(boxes, key=lambda b: b[0]), layout.has_classes),
                 export_split(image, root), problems[image]) for image, boxes in found.items()]


def _items(root: Path) -> list[Item]:
    layouts = find_csvs(root)
    if not layouts:
        hint = csv_hint(root)
        raise DataFormatError(f"{root}: {hint}" if hint else
                              f"{root}: no CSV with a header row {','.join(CSV_COLUMNS)}")
    index = FileIndex(root)
    items = one_item_per_image([item for layout in layouts for item in _csv_items(layout, root, index)],
                               lambda it: it.annotation.relative_to(root).as_posix())
    names = " or ".join(layout.path.relative_to(root).as_posix() for layout in layouts)
    items += unlisted_images(root, {it.image for it in items}, names)
    return sorted(items, key=lambda it: str(it.image))


def _parse(item: Item, width: int, height: int) -> Annotation:
    boxes, labels = [], []
    for number, values, label in item.payload.rows:
        where = f"{item.annotation.name} line {number}"
        if values is None:
            raise AnnotationError("unparsable-annotation", f"{where}: the row has no cell for every column of "
                                                           f"{','.join(CSV_COLUMNS)}")
        boxes.append([parse_number(v, where) for v in values])
        labels.append(label)
    labels = tuple(labels) if item.payload.has_classes else None
    return Annotation(np.array(boxes, dtype=np.float64).reshape(-1, 4), labels)


def _label_kind(root: Path) -> str | None:
    layouts = find_csvs(root)
    return LABEL_NAMES if layouts and all(layout.has_classes for layout in layouts) else None


READER = Reader("csv", _items, _parse, _label_kind)
