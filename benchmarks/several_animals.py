"""What a model's box is on the photos with several animals that it misses, and how clear their primary box is.

The ground truth of a photo is its largest box (the primary animal). This reads a per-image table written
by ``python -m localizer evaluate`` (``RUN/metrics_SPLIT[_tta].csv``: true and predicted boxes, in pixels),
parses every annotated box of its photos with several animals again (the run's data folder, format and
class filter, as :func:`localizer.data.validation.check_item` reads them), and prints:

* how many of those photos have a second animal of about the primary's size (box area at least
  :data:`SAME_SIZE` of the largest's), where "the largest" is close to a coin toss;
* for each miss (IoU <= 0.5, the PASCAL VOC criterion) what the predicted box matches instead
  (IoU > 0.5): another annotated animal, the box around all of them, or neither (between animals, or
  off).

Use the validation split for error analysis (the test split is for the final numbers). Example (a few
seconds; ``evaluate`` about a minute on 2 CPU cores)::

    python -m localizer evaluate --checkpoint runs/report/checkpoints/best.pt --split val
    python benchmarks/several_animals.py runs/report runs/report/metrics_val_tta.csv
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd
import torch
from torchvision.ops import box_area, box_iou

from localizer.engine.evaluation import MEASUREMENT_MIN_IMAGES
from localizer.data.readers import get_reader, resolve_classes
from localizer.recipe import TrainConfig
from localizer.data.validation import check_item

#: A second animal whose box has at least this share of the largest box's area is "of about the same size".
SAME_SIZE = 0.8


def describe_photo(boxes: torch.Tensor, pred: torch.Tensor) -> dict:
    """For one photo's annotated boxes ``(K, 4)`` (K >= 2, pixel xyxy) and its predicted box ``(4,)``:
    ``second_area`` (the second-largest box's area as a share of the largest's), ``iou`` (with the
    largest box, the ground truth), ``other_iou`` (best IoU with another box) and ``group_iou`` (IoU with
    the box around all of them)."""
    boxes = boxes.double()
    areas = box_area(boxes)
    order = areas.argsort(descending=True, stable=True)
    group = torch.cat([boxes[:, :2].amin(0), boxes[:, 2:].amax(0)])
    ious = box_iou(pred.double()[None], torch.cat([boxes[order], group[None]]))[0]
    return {"second_area": float(areas[order[1]] / areas[order[0]]), "iou": float(ious[0]),
            "other_iou": float(ious[1:-1].max()), "group_iou": float(ious[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the run folder the metrics table is of (its data, format, classes)")
    parser.add_argument("metrics", type=Path, help="a per-image table of `python -m localizer evaluate` (CSV)")
    args = parser.parse_args()
    config = TrainConfig.from_dict(json.loads((args.run / "config.json").read_text()))
    table = pd.read_csv(args.metrics)
    if "n_boxes" not in table or "pred_xmin" not in table:
        parser.error(f"{args.metrics}: not a per-image table of `evaluate` (no n_boxes or pred_xmin column)")
    several = table[table["n_boxes"] > 1]
    formats = pd.read_csv(args.run / "manifest.csv", usecols=["format"])["format"].unique()
    reader = get_reader(str(formats[0]), oxford_box=config.oxford_box)
    root = Path(os.path.abspath(config.data))
    items = {str(item.image): item for item in reader.list_items(root)}
    wanted = resolve_classes(config.classes, reader, root)
    rows = []
    for row in several.itertuples():
        if row.path not in items:
            parser.error(f"{row.path}: not in {root} any more (the data folder changed since the evaluation)")
        result = check_item(items[row.path], reader, classes=wanted, keep_boxes=True)
        if result["status"] != "ok":
            parser.error(f"{row.path}: {result['reason']}")
        pred = torch.tensor([row.pred_xmin, row.pred_ymin, row.pred_xmax, row.pred_ymax])
        rows.append({"file": row.file, **describe_photo(torch.as_tensor(result["boxes"]), pred)})
    photos = pd.DataFrame(rows, columns=["file", "second_area", "iou", "other_iou", "group_iou"])
    same = photos["second_area"] >= SAME_SIZE
    misses = photos[photos["iou"] <= 0.5]
    kinds = ("another animal", "the box around all of them", "neither (between animals, or off)")
    kind = pd.Series(kinds[2], index=misses.index)
    kind[misses["group_iou"] > 0.5] = kinds[1]
    kind[misses["other_iou"] > 0.5] = kinds[0]
    print(f"{args.metrics}: {len(photos)} of {len(table)} photos have several animals; in {int(same.sum())} of them "
          f"a second animal's box has at least {SAME_SIZE:.0%} of the largest's area")
    if len(photos) < MEASUREMENT_MIN_IMAGES:
        print(f"  (only {len(photos)} photos with several animals: a pipeline check more than a measurement)")
    print(f"misses among the photos with several animals (IoU <= 0.5 with the largest animal): {len(misses)}, "
          f"of them {int(same[misses.index].sum())} on those {int(same.sum())} photos; the predicted box matches "
          "(IoU > 0.5):")
    for name in kinds:
        print(f"  {name}: {int((kind == name).sum())}")


if __name__ == "__main__":
    main()
