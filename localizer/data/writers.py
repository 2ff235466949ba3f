"""Pre-annotations: predicted boxes written in the formats annotation tools import, for a person to correct
(``predict PHOTOS --annotations FORMAT OUT``). Each writer takes the rows of
:func:`localizer.engine.prediction.predict_files` (pixel xyxy of the EXIF-oriented photo, as the readers read it)
and writes in the layout this package's readers read back (:mod:`localizer.data.readers`):

* ``label-studio``: ``OUT/tasks.json``, Label Studio's tasks with ``predictions`` (``rectanglelabels`` in percent of
  the photo, the confidence as the prediction's ``score``); each ``data.image`` a local-files URL
  (``/data/local-files/?d=`` + the photo's path relative to the photos' common folder).
* ``coco``: ``OUT/annotations/instances_default.json``, a COCO instances file, as CVAT's "COCO 1.0" holds it
  (``bbox = [x, y, w, h]`` in pixels, the confidence as ``score``).
* ``cvat-yolo``: CVAT's "YOLO 1.1" (Darknet): ``obj.names``, ``obj.data``, ``train.txt`` and
  ``obj_train_data/NAME.txt`` (``class cx cy w h`` normalized).
* ``yolo``: Ultralytics' layout: ``labels/NAME.txt`` and ``data.yaml``.
* ``voc``: ``Annotations/NAME.xml``, PASCAL VOC (1-based inclusive integer pixels).

``NAME`` is the photo's path relative to the photos' common folder (:func:`relative_paths`), so ``a/x.jpg`` and
``b/x.jpg`` keep apart. Photos to check first: with a flag threshold, the flagged photos come first (least
confident first) in ``tasks.json``, the COCO images and ``train.txt``, and every format writes ``OUT/to_check.txt``,
their names one a line in that order. A photo that could not be read gets no annotation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from xml.sax.saxutils import escape

import pandas as pd
import torch
from torchvision.ops import box_convert

from localizer.boxes import BOX_COLUMNS, normalize_boxes
from localizer.errors import DataError
from localizer.files import atomic_write_text

ANNOTATION_FORMATS = ("label-studio", "coco", "cvat-yolo", "yolo", "voc")
#: The class of every pre-annotated box when the run's class filter names no single class.
DEFAULT_CLASS = "animal"
TO_CHECK = "to_check.txt"
#: Decimals of the written coordinates: pixels (COCO) 0.01 px, normalized (YOLO) and percent (Label Studio) 1e-6.
PIXEL_DECIMALS, FRACTION_DECIMALS = 2, 6


def class_name(classes: str | None) -> str:
    """The class of a run's boxes: its ``classes`` filter when that names one class (``"cat"``), else
    :data:`DEFAULT_CLASS` (no filter, several classes, or the ``animals`` group)."""
    names = [c.strip() for c in (classes or "").split(",") if c.strip()]
    return names[0] if len(names) == 1 and names[0] != "animals" else DEFAULT_CLASS


def relative_paths(files: list[Path | str]) -> dict[str, PurePosixPath]:
    """Each file's path relative to the files' common folder (keys ``str(file)``): ``a/x.jpg`` and ``b/x.jpg``
    stay apart, a single folder's photos keep their names."""
    absolute = [Path(os.path.abspath(f)) for f in files]
    if not absolute:
        return {}
    common = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    return {str(f): PurePosixPath(p.relative_to(common).as_posix()) for f, p in zip(files, absolute)}


def _label_names(names: dict[str, PurePosixPath], suffix: str) -> dict[str, PurePosixPath]:
    """Each photo's annotation file (its relative path with ``suffix``).

    Raises:
        localizer.errors.DataError: ``output-collision``: two photos of one folder differ in their suffix only
            (``x.jpg``, ``x.png``), which the YOLO and VOC layouts name by the stem.
    """
    labels, seen = {}, {}
    for file, name in names.items():
        label = name.with_suffix(suffix)
        if label in seen:
            raise DataError("output-collision", f"{seen[label]} and {file} would share the annotation {label}; "
                            "rename one of them")
        labels[file], seen[label] = label, file
    return labels


def annotation_files(fmt: str, files: list[Path | str], flagging: bool) -> list[PurePosixPath]:
    """The files ``fmt`` may write for ``files`` (relative to OUT; :func:`write_annotations`), for the check of the
    outputs before the work; ``flagging``: a threshold is given (:data:`TO_CHECK` is written)."""
    names = relative_paths(files)
    fixed = {"label-studio": ["tasks.json"], "coco": ["annotations/instances_default.json"],
             "cvat-yolo": ["obj.names", "obj.data", "train.txt"], "yolo": ["data.yaml"], "voc": []}[fmt]
    folder = {"cvat-yolo": "obj_train_data", "yolo": "labels", "voc": "Annotations"}.get(fmt)
    suffix = ".xml" if fmt == "voc" else ".txt"
    labels = [PurePosixPath(folder) / label for label in _label_names(names, suffix).values()] if folder else []
    return [PurePosixPath(p) for p in fixed] + labels + [PurePosixPath(TO_CHECK)] * flagging


def review_order(table: pd.DataFrame) -> pd.DataFrame:
    """The photos with a box (no ``error``), flagged first, least confident first, then the others in their order."""
    rows = table[table["error"].fillna("") == ""]
    if "flagged" not in rows:
        return rows.reset_index(drop=True)
    flagged = _flagged(rows)
    return pd.concat([rows[flagged].sort_values("confidence", kind="stable"), rows[~flagged]], ignore_index=True)


def _flagged(rows: pd.DataFrame) -> pd.Series:
    """The rows ``predict --flag-below`` flagged (a missing value: not flagged)."""
    return rows["flagged"].fillna(False).astype(bool)


def write_annotations(fmt: str, table: pd.DataFrame, out: Path | str, label: str, model_version: str,
                      overwrite: bool = False) -> list[Path]:
    """Write the boxes of ``table`` (:func:`localizer.engine.prediction.predict_files`'s, pixels unrounded) as
    ``fmt`` (:data:`ANNOTATION_FORMATS`) into the folder ``out``, every box of class ``label``; returns the files
    written. ``model_version`` names the model in Label Studio. Existing files are replaced only with ``overwrite``.

    Raises:
        localizer.errors.DataError: ``bad-argument``: an unknown format; ``output-collision``: see
            :func:`_label_names`.
    """
    if fmt not in ANNOTATION_FORMATS:
        raise DataError("bad-argument", f"--annotations {fmt}: expected one of {', '.join(ANNOTATION_FORMATS)}")
    out, rows = Path(out), review_order(table)
    names = relative_paths(list(table["file"]))
    texts = _WRITERS[fmt](rows, names, label, model_version)
    if "flagged" in rows:
        texts[TO_CHECK] = "".join(f"{names[f]}\n" for f in rows.loc[_flagged(rows), "file"])
    return [atomic_write_text(out / name, text, replace=overwrite) for name, text in texts.items()]


def _label_studio(rows: pd.DataFrame, names: dict, label: str, model_version: str) -> dict[str, str]:
    tasks = []
    for row in rows.itertuples():
        value = {"x": 100 * row.xmin / row.width, "y": 100 * row.ymin / row.height,
                 "width": 100 * (row.xmax - row.xmin) / row.width, "height": 100 * (row.ymax - row.ymin) / row.height}
        value = {k: round(v, FRACTION_DECIMALS) for k, v in value.items()} | {"rotation": 0, "rectanglelabels": [label]}
        result = {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": int(row.width),
                  "original_height": int(row.height), "image_rotation": 0, "value": value}
        data = {"image": f"/data/local-files/?d={names[row.file]}", "confidence": round(row.confidence, 4)}
        data |= {"flagged": bool(row.flagged)} if "flagged" in rows else {}
        tasks.append({"data": data, "predictions": [{"model_version": model_version, "score": round(row.confidence, 4),
                                                     "result": [result]}]})
    return {"tasks.json": json.dumps(tasks, indent=2)}


def _coco(rows: pd.DataFrame, names: dict, label: str, model_version: str) -> dict[str, str]:
    images, annotations = [], []
    for index, row in enumerate(rows.itertuples(), start=1):
        images.append({"id": index, "file_name": str(names[row.file]), "width": int(row.width),
                       "height": int(row.height)})
        x, y, w, h = (round(float(v), PIXEL_DECIMALS) for v in (row.xmin, row.ymin, row.xmax - row.xmin,
                                                                  row.ymax - row.ymin))
        annotations.append({"id": index, "image_id": index, "category_id": 1, "bbox": [x, y, w, h],
                            "area": round(w * h, PIXEL_DECIMALS), "iscrowd": 0, "segmentation": [],
                            "score": round(row.confidence, 4)})
    coco = {"info": {"description": f"pre-annotations of {model_version}"}, "licenses": [],
            "categories": [{"id": 1, "name": label, "supercategory": ""}], "images": images,
            "annotations": annotations}
    return {"annotations/instances_default.json": json.dumps(coco, indent=2)}


def _yolo_lines(rows: pd.DataFrame) -> list[str]:
    """Each row's ``0 cx cy w h`` line, normalized (:func:`localizer.boxes.normalize_boxes`, then
    :func:`torchvision.ops.box_convert` to cxcywh), the one class ``0``."""
    normalized = normalize_boxes(rows[BOX_COLUMNS].to_numpy(), rows["width"].to_numpy(), rows["height"].to_numpy())
    cxcywh = box_convert(torch.from_numpy(normalized), "xyxy", "cxcywh").tolist()
    return ["0 " + " ".join(f"{v:.{FRACTION_DECIMALS}f}" for v in box) + "\n" for box in cxcywh]


def _cvat_yolo(rows: pd.DataFrame, names: dict, label: str, model_version: str) -> dict[str, str]:
    labels = _label_names({f: names[f] for f in rows["file"]}, ".txt")
    texts = {"obj.names": f"{label}\n",
             "obj.data": "classes = 1\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n",
             "train.txt": "".join(f"data/obj_train_data/{names[f]}\n" for f in rows["file"])}
    return texts | {f"obj_train_data/{labels[file]}": line for file, line in zip(rows["file"], _yolo_lines(rows))}


def _yolo(rows: pd.DataFrame, names: dict, label: str, model_version: str) -> dict[str, str]:
    labels = _label_names({f: names[f] for f in rows["file"]}, ".txt")
    texts = {"data.yaml": f"# pre-annotations of {model_version}\npath: .\ntrain: images\nval: images\n"
                          f"names:\n  0: {json.dumps(label)}\n"}
    return texts | {f"labels/{labels[file]}": line for file, line in zip(rows["file"], _yolo_lines(rows))}


def _voc(rows: pd.DataFrame, names: dict, label: str, model_version: str) -> dict[str, str]:
    """VOC's 1-based inclusive pixels: the continuous box ``(x1, y1, x2, y2)`` is ``xmin = round(x1) + 1``,
    ``xmax = round(x2)`` (the readers read ``(xmin - 1, xmax)`` back: within 0.5 px)."""
    labels, texts = _label_names({f: names[f] for f in rows["file"]}, ".xml"), {}
    for row in rows.itertuples():
        low = [min(max(round(v) + 1, 1), side) for v, side in ((row.xmin, row.width), (row.ymin, row.height))]
        high = [min(max(round(v), lo), side) for v, lo, side in ((row.xmax, low[0], row.width),
                                                                  (row.ymax, low[1], row.height))]
        box = "".join(f"<{tag}>{v}</{tag}>" for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), low + high))
        texts[f"Annotations/{labels[row.file]}"] = (
            f"<annotation>\n  <filename>{escape(names[row.file].name)}</filename>\n"
            f"  <source><annotation>{escape(model_version)}</annotation></source>\n"
            f"  <size><width>{int(row.width)}</width><height>{int(row.height)}</height><depth>3</depth></size>\n"
            f"  <object><name>{escape(label)}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>0</difficult><bndbox>{box}</bndbox></object>\n</annotation>\n")
    return texts


_WRITERS = {"label-studio": _label_studio, "coco": _coco, "cvat-yolo": _cvat_yolo, "yolo": _yolo, "voc": _voc}
