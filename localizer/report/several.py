"""What a model's box is on the photos with several animals that it misses, and how clear their primary box is.

The ground truth of a photo is its largest box (the primary animal). ``python -m localizer
several-animals RUN [TABLE]`` reads a per-image table written by ``evaluate`` or notebook 04 (true and
predicted boxes in pixels, ``n_boxes``), parses every annotated box of its photos with several
animals again (the run's data folder, format and class filter, as
:func:`localizer.data.validation.check_item` reads them), and prints:

* how many of those photos have a second animal of about the primary's size (box area at least
  :data:`SAME_SIZE` of the largest's), where "the largest" is close to a coin toss;
* for each miss (IoU <= 0.5, the PASCAL VOC criterion) what the predicted box matches instead
  (IoU > 0.5): another annotated animal, the box around all of them, or neither (between animals, or
  off).

Use the validation split for error analysis (the test split is for the final numbers).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch
from torchvision.ops import box_area, box_iou

from localizer.data.readers import get_reader, resolve_classes
from localizer.data.validation import check_item
from localizer.report.tables import MEASUREMENT_MIN_IMAGES
from localizer.engine.run import Run
from localizer.errors import DataError

#: A second animal whose box has at least this share of the largest box's area is "of about the same size".
SAME_SIZE = 0.8
#: What a missed box matches (IoU > 0.5), in the order they are tested: the first that holds wins.
KINDS = ("another animal", "the box around all of them", "neither (between animals, or off)")
#: The columns :func:`several_animals` needs of a per-image table.
COLUMNS = {"file", "path", "n_boxes", "pred_xmin", "pred_ymin", "pred_xmax", "pred_ymax"}


def describe_photo(boxes: torch.Tensor, pred: torch.Tensor) -> dict:
    """For one photo's annotated boxes ``(K, 4)`` (K >= 2, pixel xyxy) and its predicted box ``(4,)``:
    ``second_area`` (the second-largest box's area as a share of the largest's), ``iou`` (with the
    largest box, the ground truth), ``other_iou`` (best IoU with another box) and ``group_iou`` (IoU with
    the box around all of them); :func:`torchvision.ops.box_iou` in float64."""
    boxes = boxes.double()
    areas = box_area(boxes)
    order = areas.argsort(descending=True, stable=True)
    group = torch.cat([boxes[:, :2].amin(0), boxes[:, 2:].amax(0)])
    ious = box_iou(pred.double()[None], torch.cat([boxes[order], group[None]]))[0]
    return {"second_area": float(areas[order[1]] / areas[order[0]]), "iou": float(ious[0]),
            "other_iou": float(ious[1:-1].max()), "group_iou": float(ious[-1])}


def several_animals(run: Path | str, table: pd.DataFrame) -> pd.DataFrame:
    """One row per photo of ``table`` (a per-image table of the run in folder ``run``) with several
    animals: ``file``, :func:`describe_photo`'s values and ``kind`` (one of :data:`KINDS` for a
    miss, IoU <= 0.5 with the largest box; empty for a hit).

    Raises:
        FileNotFoundError: ``run`` is not a run folder.
        localizer.errors.DataError: a photo of the table is no longer in the run's data folder, or
            its annotation can no longer be used (the message names the photo and the reason).
    """
    run = Run.open(run)
    config = run.config
    reader = get_reader(str(run.manifest["format"].iloc[0]), oxford_box=config.oxford_box)
    root = Path(os.path.abspath(config.data))
    items = {str(item.image): item for item in reader.list_items(root)}
    wanted = resolve_classes(config.classes, reader, root)
    rows = []
    for row in table[table["n_boxes"] > 1].itertuples():
        if row.path not in items:
            raise DataError("missing", f"not in {root} any more (the data folder changed since the evaluation)",
                            row.path)
        result = check_item(items[row.path], reader, classes=wanted, keep_boxes=True)
        if result["status"] != "ok":
            raise DataError(result["code"], result["reason"].split(": ", 1)[-1], row.path)
        pred = torch.tensor([row.pred_xmin, row.pred_ymin, row.pred_xmax, row.pred_ymax])
        rows.append({"file": row.file, **describe_photo(torch.as_tensor(result["boxes"]), pred)})
    photos = pd.DataFrame(rows, columns=["file", "second_area", "iou", "other_iou", "group_iou"])
    missed = photos["iou"] <= 0.5
    photos["kind"] = ""
    photos.loc[missed, "kind"] = KINDS[2]
    photos.loc[missed & (photos["group_iou"] > 0.5), "kind"] = KINDS[1]
    photos.loc[missed & (photos["other_iou"] > 0.5), "kind"] = KINDS[0]
    return photos


def format_several(photos: pd.DataFrame, n_photos: int, name: Path | str) -> str:
    """The lines ``several-animals`` prints for :func:`several_animals`'s ``photos`` of a table
    ``name`` of ``n_photos`` rows."""
    same = photos["second_area"] >= SAME_SIZE
    misses = photos[photos["kind"] != ""]
    lines = [f"{name}: {len(photos)} of {n_photos} photos have several animals; in {int(same.sum())} of them "
             f"a second animal's box has at least {SAME_SIZE:.0%} of the largest's area"]
    if len(photos) < MEASUREMENT_MIN_IMAGES:
        lines.append(f"  (only {len(photos)} photos with several animals: one of them moves each share by "
                     f"{100 / max(len(photos), 1):.1f} points)")
    lines.append(f"misses among the photos with several animals (IoU <= 0.5 with the largest animal): {len(misses)}, "
                 f"of them {int(same[misses.index].sum())} on those {int(same.sum())} photos; the predicted box "
                 "matches (IoU > 0.5):")
    lines += [f"  {kind}: {int((misses['kind'] == kind).sum())}" for kind in KINDS]
    return "\n".join(lines)

