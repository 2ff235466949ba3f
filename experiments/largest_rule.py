"""When the ``largest`` head should take the largest detected animal instead of its soft-argmax box.

On a run's **validation** split (never the test split: this chooses the rule), for a run of the
``largest`` head (:class:`localizer.model.heads.LargestHead`), prints mean IoU and accuracy at IoU > 0.5
(PASCAL VOC criterion), over all photos and over those with one and with several annotated animals,
for the soft-argmax box alone and :func:`localizer.model.detection.choose_largest` at several animal-score
thresholds and agreement IoUs: the largest detected animal, or the soft-argmax box where the two
agree (the head predicts with :data:`localizer.model.detection.ANIMAL_SCORE` and
:data:`localizer.model.detection.LARGEST_AGREEMENT`); and the largest detection at several non-maximum suppression
IoUs (:data:`localizer.model.detection.ANIMAL_NMS_IOU`; the other rows use the head's). With flip
test-time augmentation as the run's recipe says, fused as ``evaluate`` fuses it
(:func:`localizer.engine.inference.fuse_flip`); and, instead of fusing the two views' boxes, the largest of
the detections of both views pooled (one non-maximum suppression over both; where neither detects an
animal, the plain soft-argmax box). Example (about a minute on 2 CPU cores)::

    python experiments/largest_rule.py runs/RUN
"""

from __future__ import annotations

import torch
from common import describe_split, predict_views, score_table, validation_run

from localizer.boxes import hflip_boxes
from localizer.model.geometry import soft_argmax
from localizer.model.detection import ANIMAL_SCORE, choose_largest
from localizer.engine.inference import fuse_flip

SCORES = (0.3, 0.5, 0.7)
AGREEMENTS = (0.3, 0.5, 0.7, 1.0)
NMS_IOUS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
POOLED_SCORES = (0.5, 0.6)


@torch.no_grad()
def main() -> None:
    run, (model, info, rows, dataset, targets, several) = validation_run(__doc__, ("largest",))
    config = info["config"]

    def outputs(net, x) -> tuple:  # the soft-argmax box, every cell's box and score
        box_logits, cell_logits, cell_scores = net.head.outputs(net.feature_map(x))
        return soft_argmax(box_logits), net.head.animals.boxes(cell_logits), cell_scores

    views = predict_views(model, info, dataset, outputs)
    describe_split(run, rows, several, f", {'with' if config.tta else 'without'} flip TTA")

    def predict(rule) -> torch.Tensor:
        plain = rule(*views["plain"])
        return fuse_flip(plain, hflip_boxes(rule(*views["flipped"]))) if config.tta else plain

    rules = {"soft-argmax box alone": lambda box, cells, scores: box}
    for score in SCORES:
        for agreement in AGREEMENTS:
            name = f"largest detection, score >= {score:g}" + (f", unless IoU > {agreement:g} with the box"
                                                                if agreement < 1 else "")
            rules[name] = (
                lambda box, cells, scores, s=score, a=agreement: choose_largest(box, cells, scores, s, agreement=a))
    for nms_iou in NMS_IOUS:
        rules[f"largest detection, score >= {ANIMAL_SCORE:g}, NMS at IoU {nms_iou:g}"] = (
            lambda box, cells, scores, n=nms_iou: choose_largest(box, cells, scores, nms_iou=n, agreement=1.0))
    predictions = {name: predict(rule) for name, rule in rules.items()}
    if config.tta:  # the detections of both views pooled, then the largest (one NMS over both)
        box, cells, scores = views["plain"]
        flipped = views["flipped"]
        pooled = (box, torch.cat([cells, hflip_boxes(flipped[1])], dim=1), torch.cat([scores, flipped[2]], dim=1))
        for score in POOLED_SCORES:
            predictions[f"flip views pooled, then the largest, score >= {score:g}"] = choose_largest(
                *pooled, score, agreement=1.0)
    print(score_table("rule", predictions, targets, several).to_string())

if __name__ == "__main__":
    main()
