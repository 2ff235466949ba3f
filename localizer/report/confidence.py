"""Which boxes to trust and which labels to re-check: the confidence of every prediction
(:func:`localizer.engine.inference.box_confidence`) read three ways.

* **How well it ranks the boxes** (:func:`localizer.report.results.confidence_table`,
  :func:`~localizer.report.results.format_confidence`): Spearman's rank
  correlation of confidence and IoU, and the risk-coverage table, the accuracy at IoU > 0.5 (PASCAL VOC
  criterion) and mean IoU of the most confident 50 / 80 / 90 / 100 % of the photos (Geifman & El-Yaniv,
  "Selective Classification for Deep Neural Networks", NeurIPS 2017).
* **Which new photos to check** (:func:`localizer.engine.review.flag_threshold`): ``predict --flag-below``
  flags the photos whose confidence is below a threshold chosen on the run's validation split.
* **Which labels to check** (:func:`localizer.engine.review.review_run`, :func:`plot_review`; the ``review``
  command): the photos whose annotation most disagrees with a confident prediction.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from localizer.report.photos import plot_rows, save_figure

#: The columns of a review table that ``review`` and notebook 04 show.
REVIEW_COLUMNS = ["split", "file", "iou", "confidence", "disagreement", "seen_in_training"]
#: File names of the figures of notebook 04's confidence sections in the run's ``figures/`` (not numbered
#: report figures: :data:`localizer.report.plots.FIGURE_NAMES`); ``review`` saves its gallery there too.
RISK_COVERAGE_FIGURE, REVIEW_FIGURE = "risk_coverage.png", "label_review.jpg"


def review_titles(table: pd.DataFrame) -> list[str]:
    """One title per row of a :func:`localizer.engine.review.review_ranking` table: rank, split
    (``seen in training`` for the training split), IoU and confidence."""
    return [f"#{rank} {'train, seen in training' if row['seen_in_training'] else row['split']}\n"
            f"IoU {row['iou']:.2f}, confidence {row['confidence']:.2f}" for rank, row in table.iterrows()]


def plot_review(table: pd.DataFrame, top: int, path: Path | str | None = None, replace: bool = True) -> Figure:
    """The gallery of the ``top`` first photos of a :func:`localizer.engine.review.review_ranking` table: each
    photo with its annotation (solid white) and the prediction (red dashed) overlaid, titled by :func:`review_titles`
    (:func:`localizer.report.photos.plot_rows`; saved at ``path``, a ``.jpg`` for photos, replacing a file there
    only with ``replace``)."""
    shown = table.head(top)
    return save_figure(plot_rows(shown, titles=review_titles(shown)), path, replace=replace)
