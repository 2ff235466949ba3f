"""Where a soft-argmax model's errors are, and whether reading each edge at its most likely position helps.

On a run's **validation** split (never the test split: this chooses between decodings), prints mean
IoU and accuracy at IoU > 0.5 (PASCAL VOC criterion) for photos with one annotated animal and with
several (the manifest's ``n_boxes``; the ground truth is the largest box), for two ways of reading a
box off the head's per-edge distributions (:class:`localizer.model.heads.SoftArgmaxHead`):

* ``mean``: the expectation over all positions (the soft-argmax the model was trained through);
* ``mode +-w``: the expectation over the ``2w + 1`` positions around the most likely one only, which
  commits to one of two animals where the mean would fall between them.

Flip test-time augmentation as the run's recipe says, fused as ``evaluate`` fuses it
(:func:`localizer.engine.inference.fuse_flip`: averaged where the two boxes agree). Example (about a minute on 2 CPU cores)::

    python experiments/edge_decoding.py runs/report
"""

from __future__ import annotations

import torch
from common import describe_split, predict_views, validation_run

from localizer.boxes import hflip_boxes
from localizer.model.geometry import soft_argmax
from localizer.engine.inference import fuse_flip
from localizer.metrics import paired_iou, sanitize_boxes

WINDOWS = (None, 1, 2, 4)


def decode(logits: torch.Tensor, window: int | None) -> torch.Tensor:
    """Edges ``(N, 4)`` in [0, 1] from per-edge logits ``(N, 4, K)``: the model's own soft-argmax, the
    mean over all ``K`` positions (``window`` None), or the same over the positions within ``window``
    bins of the most likely one (the others' logits set to -inf, so the softmax renormalizes)."""
    if window is not None:
        far = (torch.arange(logits.shape[-1]) - logits.argmax(-1, keepdim=True)).abs() > window
        logits = logits.masked_fill(far, float("-inf"))
    return soft_argmax(logits)


@torch.no_grad()
def main() -> None:
    run, (model, info, rows, dataset, targets, several) = validation_run(__doc__, ("softargmax",))
    config = info["config"]
    views = predict_views(model, info, dataset, lambda net, x: net.head.outputs(net.feature_map(x)),
                          flipped=config.tta)
    logits = views["plain"][0]
    flipped = views["flipped"][0] if config.tta else None
    describe_split(run, rows, several, f", {'with' if config.tta else 'without'} flip TTA")
    for window in WINDOWS:
        boxes = decode(logits, window)
        if config.tta:
            boxes = fuse_flip(boxes, hflip_boxes(decode(flipped, window)))
        iou = paired_iou(sanitize_boxes(boxes), targets)
        name = "mean" if window is None else f"mode +-{window}"
        parts = [f"{label} {iou[mask].mean():.4f} / {(iou[mask] > 0.5).float().mean():.2%}"
                 for label, mask in (("all", torch.ones_like(several)), ("one animal", ~several),
                                     ("several", several))]
        print(f"  {name:9s} mean IoU / accuracy:  " + "   ".join(parts))


if __name__ == "__main__":
    main()
