"""Which estimate of a box's quality ranks the boxes best: the candidates for the confidence of issue 31.

On a run's **validation** split (never the test split: this chooses the estimate), prints for each
candidate Spearman's rank correlation of the estimate with the IoU of the box as ``evaluate`` predicts
it (flip test-time augmentation as the run's recipe says, fused by
:func:`localizer.engine.inference.fuse_flip`), and the accuracy at IoU > 0.5 (PASCAL VOC criterion) and
mean IoU of the most confident 80 % of the photos (a risk-coverage point; Geifman & El-Yaniv,
"Selective Classification for Deep Neural Networks", NeurIPS 2017):

* ``flip IoU``: the IoU of the plain box with the box of the mirrored photo, mirrored back (the two
  views of flip TTA);
* ``top-4 mass``, ``-std``: the spread of the per-edge distributions of the ``softargmax`` head (for
  the ``largest`` head: of the cell whose box it predicts, or of its soft-argmax part where no cell
  detects an animal): the mean over the four edges of the probability of the four most likely bins
  (what Li et al., "Generalized Focal Loss V2", CVPR 2021, feed their quality branch) or of minus the
  distribution's standard deviation (normalized units); the mean over both views with flip TTA;
* ``detection score`` (``largest`` head only): the sigmoid score of the cell whose box is predicted,
  0 where no cell detects an animal;
* products of the flip IoU and the others (each in [0, 1]).

Example (about a minute on 2 CPU cores)::

    python experiments/confidence_estimates.py runs/report-quick
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from common import describe_split, predict_views, validation_split

from localizer.boxes import hflip_boxes
from localizer.engine.inference import fuse_flip
from localizer.metrics import paired_iou, risk_coverage, sanitize_boxes, spearman
from localizer.model.heads import choose_largest, soft_argmax

TOP_K = 4  # GFL V2's k


def spread(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(top-k mass, -std)`` ``(N,)`` of per-edge logits ``(N, 4, bins)``, each the mean over the edges."""
    probs = logits.float().softmax(-1)
    positions = torch.linspace(0, 1, probs.shape[-1])
    mean = (probs * positions).sum(-1, keepdim=True)
    std = ((probs * (positions - mean) ** 2).sum(-1)).sqrt()
    return probs.topk(TOP_K, dim=-1).values.sum(-1).mean(-1), -std.mean(-1)


def head_outputs(net, x) -> tuple:
    """The predicted boxes ``(N, 4)``, the logits of their per-edge distributions ``(N, 4, bins)`` and the
    detection score ``(N,)`` (NaN for the softargmax head)."""
    head = net.head
    if not hasattr(head, "animals"):  # the softargmax head
        logits = head.outputs(net.feature_map(x))
        return soft_argmax(logits), logits, torch.full((len(x),), float("nan"))
    box_logits, cell_logits, cell_scores = head.outputs(net.feature_map(x))
    cells = head.animals.boxes(cell_logits)
    boxes = choose_largest(soft_argmax(box_logits), cells, cell_scores)
    match = (cells == boxes[:, None]).all(-1)  # the cell whose box was taken, if any
    found = match.any(-1)
    cell = match.float().argmax(-1)
    rows = torch.arange(len(x))
    logits = torch.where(found[:, None, None], cell_logits[rows, cell], box_logits)
    score = torch.where(found, cell_scores[rows, cell].sigmoid(), torch.zeros_like(found, dtype=torch.float32))
    return boxes, logits, score


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a finished run folder (softargmax or largest head)")
    args = parser.parse_args()
    model, info, rows, dataset, targets, several = validation_split(args.run)
    config = info["config"]
    if config.head == "linear":
        parser.error(f"{args.run}: the linear head has no per-edge distributions; needs softargmax or largest")
    views = predict_views(model, info, dataset, head_outputs)
    (plain, logits, score), (flipped, flipped_logits, flipped_score) = views["plain"], views["flipped"]
    flipped = hflip_boxes(flipped)
    boxes = fuse_flip(plain, flipped) if config.tta else plain
    iou = paired_iou(sanitize_boxes(boxes), targets).numpy()
    describe_split(args.run, rows, several, f", {'with' if config.tta else 'without'} flip TTA")
    flip_iou = paired_iou(sanitize_boxes(plain), sanitize_boxes(flipped))
    top, std = spread(logits)
    if config.tta:
        flipped_top, flipped_std = spread(flipped_logits)
        top, std, score = (top + flipped_top) / 2, (std + flipped_std) / 2, (score + flipped_score) / 2
    estimates = {"flip IoU": flip_iou, f"top-{TOP_K} mass": top, "-std": std,
                 f"flip IoU x top-{TOP_K} mass": flip_iou * top, "flip IoU x (1 + 2 x -std)": flip_iou * (1 + 2 * std)}
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
