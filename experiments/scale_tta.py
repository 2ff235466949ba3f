"""Zoom-out test-time augmentation: whether shrunk copies of the photo, added to the flip TTA, help.

On a run's **validation** split (never the test split: this chooses whether to add the views), prints
mean IoU and accuracy at IoU > 0.5 (PASCAL VOC criterion), over all photos and over those with one and
with several annotated animals. Each view is the photo shrunk by a scale ``s`` about its centre, the
uncovered border filled with the grey of training's box-aware scale + shift
(:data:`localizer.data.batch_augment.AFFINE_FILL`, a zoom-out the model saw in training for ``s`` >= 0.75),
as it is and mirrored; each view's box is mapped back to the photo (:func:`unzoom_boxes`). Rows:
the flip TTA of ``evaluate`` (``s`` = 1, :func:`localizer.engine.inference.fuse_flip`), each scale's flip TTA
alone, and three fusions of all views: the mean of the views that agree (IoU > 0.5) with the first
row's box, the medoid view (the largest summed IoU with all views: a vote where the views take
different animals of a photo with several), and the mean of the views that agree with the medoid.
Then, for each row, the photos it gets above IoU 0.5 that the first row misses, and the reverse.
Example (about a minute and a half on 2 CPU cores)::

    python experiments/scale_tta.py runs/report --scales 0.9,0.8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import describe_split, predict_views, score_table, validation_split
from torchvision.ops import box_iou

from localizer.boxes import hflip_boxes
from localizer.engine.inference import TTA_AGREEMENT, fuse_flip, unzoom_boxes, zoom_out
from localizer.metrics import paired_iou, sanitize_boxes

PRODUCTION = "flip TTA (evaluate's), s = 1"


def mean_of_agreeing(anchor: torch.Tensor, views: torch.Tensor, agreement: float = TTA_AGREEMENT) -> torch.Tensor:
    """Per photo, the mean of the views ``(V, N, 4)`` whose box overlaps ``anchor`` ``(N, 4)`` with IoU >
    ``agreement``; ``anchor`` where none does (all normalized xyxy)."""
    agree = (torch.stack([paired_iou(view, anchor) for view in views]) > agreement).float()[..., None]
    count = agree.sum(0)
    return torch.where(count > 0, (views * agree).sum(0) / count.clamp_min(1), anchor)


def medoid(views: torch.Tensor) -> torch.Tensor:
    """Per photo, the view ``(V, N, 4)`` -> ``(N, 4)`` with the largest summed IoU with all views (the
    first of ties)."""
    picks = [views[box_iou(boxes, boxes).sum(1).argmax(), i] for i, boxes in enumerate(views.unbind(1))]
    return torch.stack(picks)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a finished run folder")
    parser.add_argument("--scales", default="0.9,0.8",
                        help="comma-separated zoom-out scales below 1, besides the photo as it is (default 0.9,0.8)")
    args = parser.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    if not all(0 < s < 1 for s in scales):
        parser.error(f"--scales {args.scales}: each scale must lie in (0, 1)")
    model, info, rows, dataset, targets, several = validation_split(args.run)
    describe_split(args.run, rows, several, f", zoom-out scales {', '.join(f'{s:g}' for s in scales)}")
    views, fused = [], {}
    for scale in [1.0, *scales]:
        out = predict_views(model, info, dataset, lambda net, x, s=scale: net(x if s == 1 else zoom_out(x, s)))
        plain, flipped = (sanitize_boxes(unzoom_boxes(b, scale))
                          for b in (out["plain"][0], hflip_boxes(out["flipped"][0])))
        views += [plain, flipped]
        fused[PRODUCTION if scale == 1 else f"flip TTA at s = {scale:g} alone"] = fuse_flip(plain, flipped)
    views = torch.stack(views)
    best_view = medoid(views)
    predictions = fused | {
        "all views: mean of those agreeing with the first row": mean_of_agreeing(fused[PRODUCTION], views),
        "all views: the medoid": best_view,
        "all views: mean of those agreeing with the medoid": mean_of_agreeing(best_view, views),
    }
    print(score_table("rule", predictions, targets, several).to_string())
    hits = {name: paired_iou(boxes, targets) > 0.5 for name, boxes in predictions.items()}
    for name, hit in hits.items():
        print(f"{name}: {int((hit & ~hits[PRODUCTION]).sum())} photos gained, "
              f"{int((~hit & hits[PRODUCTION]).sum())} lost against the first row")


if __name__ == "__main__":
    main()
