"""Text tables of a run's scores for reading: the model beside the baselines with their intervals
(:func:`format_metrics`) and the scores of photos with one animal and with several (:func:`by_animal_count`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from localizer.errors import DataError


#: The columns of :func:`format_metrics`: the scores (``name``) and the intervals shown (``name 95% CI``).
SCORE_COLUMNS, INTERVAL_COLUMNS = ("mean_iou", "acc_50", "acc_75", "acc_50_95"), ("mean_iou", "acc_50")


#: Below this many scored images one image moves the accuracy by more than 2 points (the smoke run tests 8):
#: :func:`format_metrics` says so.
MEASUREMENT_MIN_IMAGES = 50
#: The profile whose runs check that the pipeline runs, not how well (a small subset, a few epochs).
PIPELINE_CHECK = "smoke"


def format_metrics(metrics: dict, pipeline_check: bool = False) -> str:
    """A small text table: model and baselines, mean IoU and accuracies, in percent, and the 95 %
    bootstrap intervals of the mean IoU and of the accuracy at IoU > 0.5 (columns ``mean_iou 95% CI``
    and ``acc_50 95% CI``, e.g. ``[82.10, 86.05]``; ``n/a`` below 2 photos). Its header names the split,
    the number of images and whether the model was scored with flip test-time augmentation (``tta``);
    it says that the scores measure nothing for a ``pipeline_check`` (a run of the :data:`PIPELINE_CHECK`
    profile), and below :data:`MEASUREMENT_MIN_IMAGES` images how far one image moves the accuracy.
    ``metrics``: as :func:`localizer.engine.evaluation.evaluate_model` gives them."""
    rows = {"model": metrics, **metrics["baselines"]}
    table = pd.DataFrame(rows).T[list(SCORE_COLUMNS)].astype(float).mul(100).round(2)
    for name in INTERVAL_COLUMNS:
        table[f"{name} 95% CI"] = [_interval_text(row["intervals"][name]) for row in rows.values()]
    footer = (f"\n95% CI: bootstrap interval over the {metrics['n']} photos ({metrics['bootstrap']['resamples']:,} "
              "resamples, percentile method)")
    tta = "with flip TTA" if metrics["tta"] else "without TTA"
    header = f"{metrics['split']} split, n = {metrics['n']} images, model scored {tta} (values in %)"
    if pipeline_check:
        header += (f"\npipeline check only (profile {PIPELINE_CHECK}: a small subset, a few epochs): these scores "
                   "say that every step runs, not how well")
    if metrics["n"] < MEASUREMENT_MIN_IMAGES:
        header += (f"\nfew photos: {metrics['n']} images (fewer than {MEASUREMENT_MIN_IMAGES}): one image moves the "
                   f"accuracy by {100 / metrics['n']:.1f} points; read the 95 % intervals, and compare models on the "
                   "same photos (python -m localizer compare)")
    return header + "\n" + table.to_string() + footer


def _interval_text(interval) -> str:
    """``[82.10, 86.05]`` (percent, 2 decimals) of a ``[low, high]`` fraction interval; ``n/a`` for NaN."""
    low, high = (100 * float(v) for v in interval)
    return "n/a" if low != low or high != high else f"[{low:.2f}, {high:.2f}]"


def by_animal_count(per_image: pd.DataFrame) -> pd.DataFrame:
    """Scores of the photos with one annotated animal and of those with several (whose ground truth
    is the largest box, the primary animal): the error analysis of a one-box task.

    Args:
        per_image: rows with ``iou`` and ``n_boxes`` (:func:`evaluate_model`'s table).

    Returns:
        One row per group present (``one animal``, ``several animals``): ``photos``, ``mean IoU %``,
        ``acc IoU>0.5 %`` (PASCAL VOC criterion) and ``misses`` (IoU <= 0.5), percentages to 2 places.

    Raises:
        DataError: the table has no ``n_boxes`` column (an evaluation of photos without annotations).
    """
    if "n_boxes" not in per_image:
        raise DataError("no-box-counts", "the per-image table has no n_boxes column (boxes annotated per photo)")
    group = np.where(per_image["n_boxes"] > 1, "several animals", "one animal")
    iou = per_image["iou"].astype("float64")  # float32 IoUs would print as 90.620003 after rounding
    table = iou.groupby(group, sort=False).agg(
        photos="size", **{"mean IoU %": "mean", "acc IoU>0.5 %": lambda iou: (iou > 0.5).mean()},
        misses=lambda iou: int((iou <= 0.5).sum()))
    table[["mean IoU %", "acc IoU>0.5 %"]] = (100 * table[["mean IoU %", "acc IoU>0.5 %"]]).round(2)
    return table.reindex([g for g in ("one animal", "several animals") if g in table.index])
