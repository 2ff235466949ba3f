"""Evaluation of a trained model on a split, beside the two baselines of the course report.

* **mean-box baseline**: predicts, for every image, the mean normalized training box.
* **random-box baseline**: a seeded uniformly random box per image (per axis, two uniform numbers
  in [0, 1], sorted).

Both are scored on the same split as the model. A model must beat the mean box clearly to have
learned anything beyond the dataset's average framing, and by more than the 95 % bootstrap intervals
over the scored photos (:func:`localizer.metrics.score_intervals`) that every score comes with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from localizer.boxes import BOX_COLUMNS, denormalize_boxes
from localizer.engine.cache import ImageCache
from localizer.engine.datasets import CachedBoxDataset, normalized_targets
from localizer.errors import DataError
from localizer.engine.inference import predict_dataset
from localizer.metrics import CONFIDENCE, RESAMPLES, confidence_summary, paired_iou, score_intervals, summarize
from localizer.engine.numerics import Numerics


def baseline_predictions(mean_box, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``{"mean_box": (n, 4), "random_box": (n, 4)}`` normalized xyxy baseline predictions.

    Args:
        mean_box: ``(4,)`` the mean normalized xyxy box of the training split (e.g.
            ``normalized_targets(train_rows).mean(0)``), or ``(K, 4)`` training boxes to average.
        n: number of images to predict for.
        seed: seed of the random boxes.
    """
    mean_box = np.asarray(mean_box, dtype=np.float64).reshape(-1, 4).mean(axis=0, keepdims=True)
    mean_box = np.repeat(mean_box, n, axis=0)
    rng = np.random.default_rng(seed)
    xs, ys = np.sort(rng.uniform(size=(n, 2)), axis=1), np.sort(rng.uniform(size=(n, 2)), axis=1)
    random_box = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)
    return {"mean_box": mean_box, "random_box": random_box}


def evaluate_model(
    model,
    manifest: pd.DataFrame,
    image_size: int,
    mean,
    std,
    split: str = "test",
    tta: bool = False,
    cache_dir: str | None = None,
    seed: int = 0,
    progress: bool = True,
    mean_box=None,
    numerics: Numerics | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Score ``model`` on the ``split`` rows of a manifest (``"all"`` for every row).

    The mean-box baseline predicts ``mean_box`` (``(4,)`` normalized xyxy), by default the mean box
    of the manifest's train rows: it must come from training data, never from the photos scored.
    ``numerics``: how the model computes (see :func:`predict_batch`; default float32).

    Returns:
        ``(metrics, per_image)``. ``metrics``: ``mean_iou``, ``acc_50`` (PASCAL VOC criterion, IoU > 0.5),
        ``acc_75``, ``acc_50_95``, ``n``, ``intervals`` (the 95 % bootstrap interval of each of the four over the
        scored photos, ``[low, high]``: :func:`localizer.metrics.score_intervals`, seeded with ``seed``),
        ``split``, ``tta``, ``baselines`` (``mean_box`` and ``random_box``, each with the same keys, on the same
        images), ``bootstrap`` (``method``, ``confidence``, ``resamples``, ``seed``) and ``confidence``
        (:func:`~localizer.metrics.confidence_summary`). ``per_image``: ``file``, ``path``, ``width``, ``height``,
        ``n_boxes`` (boxes annotated in the photo, when the manifest has it), ground truth ``xmin..ymax``,
        predicted ``pred_xmin..pred_ymax`` (pixels of the original image), ``iou``, ``confidence`` (0 to 1).

    Raises:
        localizer.errors.DataError: the split has no rows, or no ``mean_box`` is given and the
            manifest has no train rows.
    """
    rows = manifest if split == "all" else manifest[manifest["split"] == split]
    if rows.empty:
        raise DataError("empty-split", f"the manifest has no rows in split {split!r}")
    rows = rows.reset_index(drop=True)
    dataset = CachedBoxDataset(rows, ImageCache(cache_dir, image_size), progress=progress)
    preds, conf = predict_dataset(model, dataset, mean, std, tta=tta, progress=progress, numerics=numerics,
                                  confidence=True)
    targets = torch.from_numpy(normalized_targets(rows))
    ious = paired_iou(preds, targets)
    metrics = {**_scores(ious, seed), "split": split, "tta": tta, "confidence": confidence_summary(ious, conf)}
    if mean_box is None:
        train = manifest[manifest["split"] == "train"]
        if train.empty:
            raise DataError("no-training-boxes", "the mean-box baseline needs the training boxes: pass mean_box")
        mean_box = normalized_targets(train).mean(axis=0)
    metrics["baselines"] = {
        name: _scores(paired_iou(torch.from_numpy(boxes).float(), targets), seed)
        for name, boxes in baseline_predictions(mean_box, len(rows), seed).items()
    }
    metrics["bootstrap"] = {"method": "percentile", "confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": seed}
    extra = ["n_boxes"] if "n_boxes" in rows else []
    per_image = rows[["file", "path", "width", "height", *extra, *BOX_COLUMNS]].copy()
    per_image[[f"pred_{c}" for c in BOX_COLUMNS]] = denormalize_boxes(
        preds.numpy(), rows["width"].to_numpy(), rows["height"].to_numpy())
    per_image["iou"], per_image["confidence"] = ious.numpy(), conf.numpy()
    return metrics, per_image


def _scores(ious: torch.Tensor, seed: int) -> dict:
    """:func:`localizer.metrics.summarize` of per-image IoUs ``(N,)`` with their ``intervals``."""
    return {**summarize(ious), "intervals": score_intervals(ious, seed=seed)}


#: The columns of :func:`format_metrics`: the scores (``name``) and the intervals shown (``name 95% CI``).
SCORE_COLUMNS, INTERVAL_COLUMNS = ("mean_iou", "acc_50", "acc_75", "acc_50_95"), ("mean_iou", "acc_50")


#: Below this many scored images a table is a pipeline check, not a measurement: one image moves
#: the accuracy by more than 2 points (and the smoke run, 64 photos, tests 10).
MEASUREMENT_MIN_IMAGES = 50


def format_metrics(metrics: dict) -> str:
    """A small text table: model and baselines, mean IoU and accuracies, in percent, and the 95 %
    bootstrap intervals of the mean IoU and of the accuracy at IoU > 0.5 (columns ``mean_iou 95% CI``
    and ``acc_50 95% CI``, e.g. ``[82.10, 86.05]``; ``n/a`` below 2 photos; left out for metrics
    without ``intervals``, of an older version). Its header names the split, the number of images and
    whether the model was scored with flip test-time augmentation (``tta``; ``metrics`` without the
    key: "TTA not recorded"); below :data:`MEASUREMENT_MIN_IMAGES` images it says how far one image moves
    the accuracy, whatever the model's training."""
    rows = {"model": metrics, **metrics.get("baselines", {})}
    table = pd.DataFrame(rows).T[list(SCORE_COLUMNS)].astype(float).mul(100).round(2)
    footer = ""
    if all("intervals" in row for row in rows.values()):
        for name in INTERVAL_COLUMNS:
            table[f"{name} 95% CI"] = [_interval_text(row["intervals"][name]) for row in rows.values()]
        resamples = metrics.get("bootstrap", {}).get("resamples", RESAMPLES)
        footer = (f"\n95% CI: bootstrap interval over the {metrics['n']} photos ({resamples:,} resamples, "
                  "percentile method)")
    tta = {True: "with flip TTA", False: "without TTA"}.get(metrics.get("tta"), "TTA not recorded")
    header = f"{metrics['split']} split, n = {metrics['n']} images, model scored {tta} (values in %)"
    if metrics["n"] < MEASUREMENT_MIN_IMAGES:
        header += (f"\npipeline check only: {metrics['n']} images (fewer than {MEASUREMENT_MIN_IMAGES}): one image moves "
                   f"the accuracy by {100 / metrics['n']:.1f} points; read the 95 % intervals, and compare models on "
                   "the same photos (python -m localizer compare)")
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


def spread_sample(per_image: pd.DataFrame, n: int = 8, seed: int = 0, skip_worst: int = 0) -> pd.DataFrame:
    """``n`` rows spread over the IoU distribution, for a figure of typical predictions: the rows
    sorted by ``iou`` are cut into ``n`` groups of (nearly) equal size by rank (:func:`pandas.qcut`
    of the positions) and one row is drawn from each (``groupby(...).sample``, seeded with ``seed``);
    returned from the lowest IoU to the highest. A plain random sample of a good model shows mostly
    easy photos; this one shows the range, one photo per ``1/n`` quantile. The ``skip_worst``
    lowest-IoU rows are left out first (the ones a figure of the worst predictions shows already),
    but only as many as leave ``n`` rows: a small split (the smoke run's 8 test photos) shows all its
    rows, worst included. All rows when there are ``n`` or fewer. (Drawn with pandas since issue 29:
    the same seed picks other photos than the hand-written draw of before did.)

    Raises:
        ValueError: ``n`` < 1.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    skip = min(max(skip_worst, 0), max(len(per_image) - n, 0))
    ordered = per_image.sort_values("iou", kind="stable").iloc[skip:]
    if len(ordered) <= n:
        return ordered
    band = pd.qcut(np.arange(len(ordered)), n, labels=False)
    return ordered.groupby(band, sort=True).sample(n=1, random_state=seed)
