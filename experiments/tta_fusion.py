"""How to combine a box with its flip test-time augmentation: always average, or only when they agree.

On a run's **validation** split (never the test split: this chooses between fusions), prints mean IoU
and accuracy at IoU > 0.5 (PASCAL VOC criterion), over all photos and over those with one and with
several annotated animals, for the plain prediction, the mean of the plain and the un-mirrored
flipped prediction (the flip TTA before ablation 20), and :func:`localizer.engine.inference.fuse_flip` at
several agreement thresholds: average when the two boxes overlap with IoU > the threshold, else keep
the plain one (as weighted boxes fusion averages only overlapping boxes; Solovyev et al., Image and
Vision Computing, 2021); and, where the two disagree, the larger or the smaller of them instead of
the plain one. The flip TTA of ``evaluate``, ``predict`` and the notebooks fuses at
:data:`localizer.engine.inference.TTA_AGREEMENT`. On a photo with two lions the plain and the flipped prediction can each
take one of them; their mean then falls between the two. Example (about a minute on 2 CPU cores)::

    python experiments/tta_fusion.py runs/report
"""

from __future__ import annotations

import torch
from common import describe_split, predict_views, score_table, validation_run
from torchvision.ops import box_area

from localizer.boxes import hflip_boxes
from localizer.engine.inference import TTA_AGREEMENT, fuse_flip
from localizer.metrics import paired_iou, sanitize_boxes

THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


@torch.no_grad()
def main() -> None:
    run, (model, info, rows, dataset, targets, several) = validation_run(__doc__)
    views = predict_views(model, info, dataset, lambda net, x: net(x))
    plain, flipped = views["plain"][0], hflip_boxes(views["flipped"][0])
    describe_split(run, rows, several)
    fusions = {"plain (no TTA)": plain, "mean (always average)": fuse_flip(plain, flipped, None)}
    fusions.update({f"fuse at IoU > {t:g}": fuse_flip(plain, flipped, t) for t in THRESHOLDS})
    # where the two disagree, the larger (or smaller) of them instead of the plain one
    plain, flipped = sanitize_boxes(plain), sanitize_boxes(flipped)
    disagree = paired_iou(plain, flipped) <= TTA_AGREEMENT
    larger = box_area(plain) >= box_area(flipped)
    fused = fuse_flip(plain, flipped)
    for name, pick in (("larger", larger), ("smaller", ~larger)):
        other = torch.where(pick[:, None], plain, flipped)
        fusions[f"fuse at IoU > {TTA_AGREEMENT:g}, else the {name}"] = torch.where(disagree[:, None], other, fused)
    count = int(disagree.sum())
    print(f"  the plain and the flipped box disagree (IoU <= {TTA_AGREEMENT:g}) on {count} photo{'s' * (count != 1)}")
    print(score_table("fusion", fusions, targets, several).to_string())

if __name__ == "__main__":
    main()
