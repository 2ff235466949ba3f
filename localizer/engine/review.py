"""Which photos to check, from the confidence of each box (:func:`localizer.engine.inference.box_confidence`):
the threshold below which ``predict --flag-below`` flags a new photo, chosen on the run's validation split
(:func:`flag_threshold`), and the photos whose annotation most disagrees with a confident prediction
(:func:`review_ranking`, :func:`review_run`; the ``review`` command)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from localizer.engine.evaluation import evaluate_checkpoint
from localizer.engine.inference import CONFIDENCE_RULE
from localizer.engine.run import Run
from localizer.files import write_json
from localizer.metrics import risk_coverage

#: ``predict --flag-below`` without a number flags the photos less confident than the least confident of
#: the most confident 80 % of the validation photos (the risk-coverage table's 80 % row): on the validation
#: split it flags the other 20 % (fewer with ties).
FLAG_COVERAGE = 0.8
#: Where :func:`flag_threshold` keeps the threshold, with the validation metrics it came from: a
#: ``metrics_*.json`` of the run folder (:data:`localizer.engine.run.RUN_ENTRIES`).
THRESHOLD_FILE = "metrics_val_confidence.json"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kept_threshold(run: Run, which: str = "best.pt") -> dict | None:
    """What :func:`flag_threshold` kept in ``RUN/`` :data:`THRESHOLD_FILE` when it holds this very checkpoint's
    threshold (its SHA-256) for today's confidence rule, else None (nothing is computed).

    Raises:
        FileNotFoundError: the checkpoint does not exist.
    """
    path, checkpoint = run.folder / THRESHOLD_FILE, run.checkpoints / which
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint {checkpoint}")
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    fresh = stored.get("confidence_rule") == CONFIDENCE_RULE and stored.get("checkpoint_sha256") == _digest(checkpoint)
    return stored if fresh else None


def flag_threshold(run: Run, which: str = "best.pt", progress: bool = True) -> dict:
    """The confidence below which ``predict --flag-below`` flags a photo, chosen on the run's validation
    split: the lowest confidence among its :data:`FLAG_COVERAGE` most confident photos. Read from
    ``RUN/`` :data:`THRESHOLD_FILE` when it was computed for this very checkpoint (its SHA-256) with today's
    confidence (:data:`localizer.engine.inference.CONFIDENCE_RULE`), else the validation split is scored
    (:func:`localizer.engine.evaluation.evaluate_checkpoint`) and the file written (not kept when the run
    folder cannot be written).

    Returns:
        The validation metrics (:func:`localizer.engine.evaluation.evaluate_model`) with ``threshold``,
        ``coverage``, ``rule``, ``confidence_rule``, ``checkpoint`` and ``checkpoint_sha256``.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        localizer.errors.DataError: the run has no validation photos.
    """
    path, checkpoint = run.folder / THRESHOLD_FILE, run.checkpoints / which
    kept = kept_threshold(run, which)
    if kept is not None:
        return kept
    digest = _digest(checkpoint)
    metrics, scores, _ = evaluate_checkpoint(run, split="val", which=which, progress=progress)
    row = risk_coverage(scores["iou"], scores["confidence"], [FLAG_COVERAGE]).iloc[0]
    metrics |= {"threshold": float(row["min_confidence"]), "coverage": FLAG_COVERAGE, "checkpoint": which,
                "checkpoint_sha256": digest, "confidence_rule": CONFIDENCE_RULE,
                "rule": f"the lowest confidence of the {int(row['photos'])} most confident of the {metrics['n']} "
                        f"validation photos ({100 * FLAG_COVERAGE:g} %; their accuracy at IoU > 0.5: "
                        f"{100 * row['acc_50']:.2f} %)"}
    try:  # a run folder on a read-only drive: the threshold is simply not kept
        write_json(path, metrics, replace=True)
    except OSError:
        pass
    return metrics


def review_ranking(per_image: pd.DataFrame) -> pd.DataFrame:
    """The photos whose annotation most disagrees with a confident prediction first: ranked by
    ``disagreement = confidence x (1 - iou)``, high for a box the model is sure of that misses its label
    (the same order for any confidence scaled by a constant: the confidence ranks boxes, it is no
    calibrated IoU), largest first; ties by the lower IoU, then the table's order.

    Args:
        per_image: rows with ``iou``, ``confidence`` and ``split`` (per-image tables of
            :func:`localizer.engine.evaluation.evaluate_model`, concatenated).

    Returns:
        The rows, ranked, with ``disagreement`` and ``seen_in_training`` (``split == "train"``: the model
        learnt this label) added; the index numbers the ranks from 1.
    """
    table = per_image.assign(disagreement=per_image["confidence"] * (1 - per_image["iou"]),
                             seen_in_training=per_image["split"] == "train")
    table = table.sort_values(["disagreement", "iou"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table.index += 1
    return table


def review_run(run: Run, splits: tuple[str, ...] = ("val", "test"), which: str = "best.pt",
               progress: bool = True, scored: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """:func:`review_ranking` of the run's ``splits``, each scored by
    :func:`localizer.engine.evaluation.evaluate_checkpoint` (as notebook 04 scores the test split) unless ``scored``
    holds its per-image table already (by split name, e.g. ``{"test": results.per_image}``).

    Raises:
        localizer.errors.DataError: a split without photos.
    """
    scored = scored or {}
    tables = [(scored[split] if split in scored else
               evaluate_checkpoint(run, split=split, which=which, progress=progress)[1]).assign(split=split)
              for split in splits]
    return review_ranking(pd.concat(tables, ignore_index=True))
