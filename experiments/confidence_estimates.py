"""Which estimate of a box's quality ranks the boxes best: the candidates for the confidence of issue 31.

On a run's **validation** split (never the test split: this chooses the estimate), prints for each
candidate Spearman's rank correlation of the estimate with the IoU of the box as ``evaluate`` predicts
it (flip test-time augmentation as the run's recipe says, fused by
:func:`localizer.engine.inference.fuse_flip`), and the accuracy at IoU > 0.5 (PASCAL VOC criterion) and
mean IoU of the most confident 80 % of the photos (a risk-coverage point; Geifman & El-Yaniv,
"Selective Classification for Deep Neural Networks", NeurIPS 2017):

* ``flip IoU``: the IoU of the plain box with the box of the mirrored photo, mirrored back (the two
  views of flip TTA);
* ``top-4 mass``, ``1 - 2 x std``: the spread of the per-edge distributions of the ``softargmax`` head
  (for the ``largest`` head: of the cell whose box it predicts, or of its soft-argmax part where no cell
  detects an animal): the mean over the four edges of the probability of the four most likely bins
  (what Li et al., "Generalized Focal Loss V2", CVPR 2021, feed their quality branch), or
  :func:`localizer.model.heads.edge_quality` (1 - 2 x the mean standard deviation); the mean over both views;
* ``detection score`` (``largest`` head only): the sigmoid score of the cell whose box is predicted,
  0 where no cell detects an animal (the mean over both views);
* products of the flip IoU and the others (each in [0, 1]; the flip IoU x (1 - 2 x std) was the package's
  rule until ablation 36);
* ``zoom IoU``: the IoU of the plain box with the box predicted on the photo shrunk by 0.9 about its centre
  (:data:`localizer.engine.inference.CONFIDENCE_ZOOM`, mapped back; a view the model saw in training), alone,
  as a third factor, and as ``min(flip IoU, zoom IoU) x (1 - 2 x std)``, what the package computes
  (:func:`localizer.engine.inference.box_confidence`).

Example (about a minute on 2 CPU cores)::

    python experiments/confidence_estimates.py runs/report-quick
"""

from __future__ import annotations

import pandas as pd
import torch
from common import describe_split, predict_views, validation_run

from localizer.boxes import hflip_boxes
from localizer.engine.inference import CONFIDENCE_ZOOM, box_confidence, fuse_flip, unzoom_boxes, zoom_out
from localizer.metrics import paired_iou, risk_coverage, sanitize_boxes, spearman
from localizer.model.detection import largest_cell, take_cells
from localizer.model.geometry import soft_argmax
from localizer.model.heads import LargestHead, edge_quality

TOP_K = 4  # GFL V2's k


def top_mass(logits: torch.Tensor) -> torch.Tensor:
    """``(N,)``: the mean over the four edges of the probability of the ``TOP_K`` most likely bins, from
    per-edge logits ``(N, 4, bins)``."""
    return logits.float().softmax(-1).topk(TOP_K, dim=-1).values.sum(-1).mean(-1)


def head_outputs(net, x) -> tuple:
    """The predicted boxes ``(N, 4)``, the logits of the distributions they were read from ``(N, 4, bins)``
    and the detection score ``(N,)`` (the chosen cell's sigmoid score, 0 where none detects an animal; NaN
    for the softargmax head)."""
    if not isinstance(net.head, LargestHead):
        logits = net.head.outputs(net.feature_map(x))
        return soft_argmax(logits), logits, torch.full((len(x),), float("nan"))
    box_logits, cell_logits, cell_scores = net.head.outputs(net.feature_map(x))
    box, cells = soft_argmax(box_logits), net.head.animals.boxes(cell_logits)
    cell = largest_cell(box, cells, cell_scores)
    score = take_cells(torch.zeros(len(x)), cell_scores.float().sigmoid(), cell)
    return take_cells(box, cells, cell), take_cells(box_logits.float(), cell_logits.float(), cell), score


@torch.no_grad()
def main() -> None:
    run, (model, info, rows, dataset, targets, several) = validation_run(__doc__, ("softargmax", "largest"))
    config = info["config"]
    views = predict_views(model, info, dataset, head_outputs)
    (plain, logits, score), (flipped, flipped_logits, flipped_score) = views["plain"], views["flipped"]
    flipped = hflip_boxes(flipped)
    boxes = fuse_flip(plain, flipped) if config.tta else plain
    iou = paired_iou(sanitize_boxes(boxes), targets).numpy()
    describe_split(run, rows, several, f", {'with' if config.tta else 'without'} flip TTA")
    flip_iou = paired_iou(sanitize_boxes(plain), sanitize_boxes(flipped))
    top = (top_mass(logits) + top_mass(flipped_logits)) / 2
    quality = (edge_quality(logits) + edge_quality(flipped_logits)) / 2
    score = (score + flipped_score) / 2
    estimates = {"flip IoU": flip_iou, f"top-{TOP_K} mass": top, "1 - 2 x std": quality,
                 f"flip IoU x top-{TOP_K} mass": flip_iou * top, "flip IoU x (1 - 2 x std)": flip_iou * quality}
    zoomed, zoomed_logits, _ = predict_views(model, info, dataset, flipped=False, outputs=lambda net, x: head_outputs(
        net, zoom_out(x, CONFIDENCE_ZOOM)))["plain"]
    zoomed = unzoom_boxes(zoomed, CONFIDENCE_ZOOM)
    zoom_iou = paired_iou(sanitize_boxes(plain), sanitize_boxes(zoomed))
    estimates |= {"zoom IoU": zoom_iou, "flip IoU x zoom IoU": flip_iou * zoom_iou,
                  "flip IoU x zoom IoU x (1 - 2 x std)": flip_iou * zoom_iou * quality,
                  "flip IoU x sqrt(zoom IoU) x (1 - 2 x std)": flip_iou * zoom_iou.sqrt() * quality,
                  "flip IoU x zoom IoU x mean (1 - 2 x std) of 3 views":
                      flip_iou * zoom_iou * (2 * quality + edge_quality(zoomed_logits)) / 3,
                  "min(flip IoU, zoom IoU) x (1 - 2 x std): box_confidence":
                      box_confidence(plain, flipped, zoomed, edge_quality(logits), edge_quality(flipped_logits))}
    if config.head == "largest":
        estimates |= {"detection score": score, "flip IoU x detection score": flip_iou * score}
    table = []
    for name, estimate in estimates.items():
        curve = risk_coverage(iou, estimate.numpy()).set_index("coverage")
        table.append({"estimate": name, "Spearman": round(spearman(estimate.numpy(), iou), 3),
                      "acc 80 % %": round(100 * curve.loc[0.8, "acc_50"], 2),
                      "mean IoU 80 % %": round(100 * curve.loc[0.8, "mean_iou"], 2)})
    print(f"  all photos: accuracy {100 * (iou > 0.5).mean():.2f} %, mean IoU {100 * iou.mean():.2f} %")
    print(pd.DataFrame(table).set_index("estimate").to_string())


if __name__ == "__main__":
    main()
