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
from localizer.data.cache import ImageCache
from localizer.data.datasets import CachedBoxDataset, normalized_targets
from localizer.errors import DataError
from localizer.engine.inference import predict_dataset
from localizer.metrics import CONFIDENCE, RESAMPLES, confidence_summary, paired_iou, score_intervals, summarize
from localizer.engine.numerics import Numerics
from localizer.engine.run import Run


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
    mean_box = _training_mean_box(manifest) if mean_box is None else mean_box
    dataset = CachedBoxDataset(rows, ImageCache(cache_dir, image_size), progress=progress)
    preds, conf = predict_dataset(model, dataset, tta=tta, progress=progress, numerics=numerics,
                                  confidence=True)
    targets = torch.from_numpy(normalized_targets(rows))
    ious = paired_iou(preds, targets)
    metrics = {**_scores(ious, seed), "split": split, "tta": tta, "confidence": confidence_summary(ious, conf)}
    metrics["baselines"] = {
        name: _scores(paired_iou(torch.from_numpy(boxes).float(), targets), seed)
        for name, boxes in baseline_predictions(mean_box, len(rows), seed).items()
    }
    metrics["bootstrap"] = {"method": "percentile", "confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": seed}
    return metrics, _per_image_table(rows, preds, ious, conf)


def _training_mean_box(manifest: pd.DataFrame) -> np.ndarray:
    """The mean normalized xyxy box ``(4,)`` of the manifest's train rows (the mean-box baseline).

    Raises:
        localizer.errors.DataError: the manifest has no train rows.
    """
    train = manifest[manifest["split"] == "train"]
    if train.empty:
        raise DataError("no-training-boxes", "the mean-box baseline needs the training boxes: pass mean_box")
    return normalized_targets(train).mean(axis=0)


def _per_image_table(rows: pd.DataFrame, preds: torch.Tensor, ious: torch.Tensor, conf: torch.Tensor) -> pd.DataFrame:
    """:func:`evaluate_model`'s per-image table: the rows' photos and boxes, the predicted boxes ``preds``
    ``(N, 4)`` (normalized xyxy) in pixels of each original photo, the IoUs and confidences ``(N,)``."""
    extra = ["n_boxes"] if "n_boxes" in rows else []
    per_image = rows[["file", "path", "width", "height", *extra, *BOX_COLUMNS]].copy()
    per_image[[f"pred_{c}" for c in BOX_COLUMNS]] = denormalize_boxes(
        preds.numpy(), rows["width"].to_numpy(), rows["height"].to_numpy())
    per_image["iou"], per_image["confidence"] = ious.numpy(), conf.numpy()
    return per_image


def _scores(ious: torch.Tensor, seed: int) -> dict:
    """:func:`localizer.metrics.summarize` of per-image IoUs ``(N,)`` with their ``intervals``."""
    return {**summarize(ious), "intervals": score_intervals(ious, seed=seed)}


def evaluate_checkpoint(run: Run, split: str = "test", which: str = "best.pt", progress: bool = True
                        ) -> tuple[dict, pd.DataFrame, dict]:
    """Score the run's checkpoint ``which`` on the ``split`` rows of its manifest, as the recipe says:
    on ``config.device``, with flip test-time augmentation when ``config.tta``, the random-box baseline
    seeded with ``config.seed`` and the mean-box baseline from the training split.

    Returns:
        ``(metrics, per_image, info)``: :func:`evaluate_model`'s two and the checkpoint's ``info``
        (:meth:`localizer.engine.run.Run.load_model`).

    Raises:
        FileNotFoundError, localizer.engine.run.CheckpointError: the checkpoint is missing or unreadable
            (:meth:`localizer.engine.run.Run.load_model`).
        localizer.errors.DataError: the split has no rows.
    """
    config = run.config
    model, info = run.load_model(which, device=config.device)
    metrics, per_image = evaluate_model(model, run.manifest, config.image_size, split=split, tta=config.tta,
                                        cache_dir=config.cache_dir, seed=config.seed, progress=progress,
                                        numerics=info["numerics"])
    return metrics, per_image, info
