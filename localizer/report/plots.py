"""Figures of the course report, with matplotlib and seaborn only: the charts here (training
curves, IoU histogram, risk-coverage curve), the photo grids in :mod:`localizer.report.photos`, offered
here too, so that notebooks import one module.

Every function returns the :class:`matplotlib.figure.Figure` it drew and, when ``path`` is given,
also saves it there (:func:`save_figure`: PNG or JPEG at :data:`DPI`). Nothing is shown: in a
notebook, :func:`show` displays a figure (photo grids as JPEG, so that executed notebooks stay small).

Drawing conventions, the same in every figure:

* ground-truth box: **solid white** rectangle (with a thin dark outline so it shows on snow too);
* predicted box: **red dashed** rectangle;
* box coordinates are pixel xyxy ``(xmin, ymin, xmax, ymax)`` of the image they are drawn on
  (continuous coordinates, see :mod:`localizer.boxes`).

The four numbered figures of the report are saved under the names of :data:`FIGURE_NAMES`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from localizer.engine.checkpoints import kept_row
from localizer.engine.schedule import history_updates
from localizer.metrics import COVERAGES, risk_coverage
from localizer.report.photos import (  # noqa: F401  (the photo grids, offered here under the same names)
    GID_GT, GID_PRED, plot_rows, plot_samples, save_figure, show)

#: File names of the report's numbered figures (photo grids as JPEG: see the module docstring).
FIGURE_NAMES = {
    "curves": "figure1_training_curves.png",
    "samples": "figure2_test_samples.jpg",
    "histogram": "figure3_iou_histogram.png",
    "worst": "figure4_worst_predictions.jpg",
}

#: ``gid`` of the chart lines tests and readers may look up: learning-rate drops, the mean IoU, the
#: threshold and the best epoch.
GID_LR_DROP, GID_MEAN, GID_THRESHOLD, GID_BEST = "lr_drop", "mean_iou", "threshold", "best_epoch"
#: ``gid`` of the risk-coverage curves: accuracy at IoU > 0.5 and mean IoU of the most confident photos.
GID_ACCURACY, GID_COVERED_IOU = "covered_accuracy", "covered_mean_iou"

_COLORS = {"train": "tab:blue", "val": "tab:orange"}

#: A learning-rate change counts as a drop (a step of a schedule such as ReduceLROnPlateau's x0.1)
#: when the new rate is at most this share of the previous one.
LR_DROP_RATIO = 0.5


def lr_drops(history: pd.DataFrame) -> pd.DataFrame:
    """Rows of a training history where ``lr`` stepped down: it fell to at most
    :data:`LR_DROP_RATIO` of the previous epoch's rate after an epoch in which it had not fallen.
    A smooth schedule (cosine: lower every epoch) has no drops. Columns ``epoch``, ``lr``: the epoch
    trained first with the lower rate, and that rate."""
    history = pd.DataFrame(history)
    lr = history["lr"].to_numpy(dtype=np.float64)
    dropped = np.zeros(len(lr), dtype=bool)
    fell = np.zeros(len(lr), dtype=bool)
    fell[1:] = lr[1:] < lr[:-1] * (1 - 1e-9)
    dropped[1:] = (lr[1:] <= lr[:-1] * LR_DROP_RATIO) & ~fell[:-1]
    return history.loc[dropped, ["epoch", "lr"]].reset_index(drop=True)


def drawn_lr_drops(history: pd.DataFrame, schedule: str = "plateau") -> pd.DataFrame:
    """The learning-rate drops Figure 1 marks (:func:`lr_drops`): those of a ``plateau`` schedule, none of a smooth
    one (a short cosine halving the rate between two epochs is no step)."""
    drops = lr_drops(history)
    return drops if schedule == "plateau" else drops.iloc[:0]


def plot_training_curves(history, loss_name: str = "Smooth L1", path: Path | str | None = None,
                         schedule: str = "plateau", keep: str = "best") -> Figure:
    """Figure 1: training curves, two panels.

    Args:
        history: a training history (:func:`localizer.engine.training.train`'s table, ``history.csv``, or
            a list of dicts) with columns ``epoch`` (1-based), ``train_loss``, ``val_loss`` (mean
            loss per batch), ``train_iou``, ``val_iou`` (mean IoU, 0..1), ``lr`` (learning rate
            used in that epoch) and ``seconds``; and ``step`` (optimizer updates after the epoch),
            when it has it, which the x axes' label gives (e.g. "epoch (54 optimizer updates each;
            702 after epoch 13)").
        loss_name: name of the loss for the left panel's title and axis.
        path: save the figure here as PNG.
        schedule: the run's learning-rate schedule (``TrainConfig.schedule``). Drops are marked for
            ``plateau`` only: a smooth schedule has none, and a short cosine one (2 epochs: 1e-3,
            then 5e-4) would look like a step to :func:`lr_drops`.
        keep: the run's kept epoch (``TrainConfig.keep``: ``best`` or ``last``).

    Returns:
        A figure with 2 axes: left, train and val loss per epoch; right, train and val mean IoU per
        epoch; whole-number epoch ticks. The epoch ``best.pt`` holds and notebook 04 tests (by ``keep``,
        :func:`localizer.engine.checkpoints.kept_row`: the best validation mean IoU, or the last) is a green
        vertical line in both panels (``gid`` :data:`GID_BEST`). Each learning-rate drop (:func:`lr_drops`) is
        a vertical dotted line in both panels (``gid`` :data:`GID_LR_DROP`), labelled with the new rate.
    """
    history = pd.DataFrame(history)
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(13, 4.8))
    epochs = history["epoch"]
    marker = "o" if len(history) <= 30 else None
    for split in ("train", "val"):
        ax_loss.plot(epochs, history[f"{split}_loss"], marker=marker, markersize=4, color=_COLORS[split],
                     label=split)
        ax_iou.plot(epochs, history[f"{split}_iou"], marker=marker, markersize=4, color=_COLORS[split],
                    label=split)
    drops = drawn_lr_drops(history, schedule)
    kept = kept_row(history, keep)
    which = "best val IoU" if keep == "best" else "last epoch, val IoU"
    for ax in (ax_loss, ax_iou):
        ax.axvline(kept["epoch"], color="tab:green", linewidth=1.5, alpha=0.8, gid=GID_BEST,
                   label=f"{which} {kept['val_iou']:.3f} (epoch {int(kept['epoch'])}, tested)")
        for number, (epoch, lr) in enumerate(zip(drops["epoch"], drops["lr"])):
            ax.axvline(epoch, color="0.35", linestyle=":", linewidth=1.5, gid=GID_LR_DROP,
                       label="learning-rate drop" if number == 0 else None)
            # above the plotting area (under the title), where no curve or legend can hide it
            ax.annotate(f"lr {lr:.3g}", xy=(epoch, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8.5,
                        color="0.25", gid=GID_LR_DROP)
        _epoch_axis(ax, int(epochs.min()), int(epochs.max()), _updates_label(history))
    pad = 16 if len(drops) else 6
    ax_loss.set_title(f"{loss_name} loss per epoch", pad=pad)
    ax_iou.set_title("Mean IoU per epoch", pad=pad)
    ax_loss.set(ylabel=f"{loss_name} loss")
    ax_iou.set(ylabel="mean IoU", ylim=(0, 1))
    ax_loss.legend(loc="best")
    ax_iou.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def _updates_label(history: pd.DataFrame) -> str:
    """``" (54 optimizer updates each; 702 after epoch 13)"`` from a history's ``step`` column."""
    epochs, per_epoch, updates = history_updates(history)
    return f" ({per_epoch} optimizer updates each; {updates:,} after epoch {epochs})"


def _epoch_axis(ax, first: int, last: int, note: str = "") -> None:
    """Label ``ax``'s x axis ``epoch`` (and ``note``), with whole-number ticks from ``first`` to ``last``,
    and a grid."""
    ax.set_xlabel("epoch" + note)
    ax.grid(alpha=0.3)
    ax.set_xlim(first - 0.5, last + 0.5)
    if last - first < 15:
        ax.set_xticks(range(first, last + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_iou_histogram(ious, threshold: float = 0.5, path: Path | str | None = None,
                       title: str = "IoU on the test split") -> Figure:
    """Figure 3: histogram of per-image IoU.

    Args:
        ious: ``(N,)`` IoU of each image, in [0, 1] (array, list, tensor or Series).
        threshold: the success criterion drawn as a black dotted line (PASCAL VOC: IoU > 0.5).
        path: save the figure here as PNG.
        title: axes title.

    Returns:
        A figure with 1 axes: 20 bins of width 0.05 on [0, 1]; the mean IoU as a red dashed vertical
        line labelled ``"mean IoU 0.xx"`` (``gid`` :data:`GID_MEAN`); the threshold as a black
        dotted line (``gid`` :data:`GID_THRESHOLD`) with the share of images above it; a legend.
    """
    if hasattr(ious, "detach"):
        ious = ious.detach().cpu().numpy()
    ious = np.asarray(ious, dtype=np.float64).reshape(-1)
    mean = float(ious.mean()) if ious.size else float("nan")
    above = float((ious > threshold).mean()) if ious.size else float("nan")
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    bins = np.linspace(0, 1, 21)
    sns.histplot(ious, bins=bins, ax=ax, color="tab:blue", edgecolor="white")
    highest = np.histogram(np.clip(ious, 0, 1), bins=bins)[0].max(initial=0)
    ax.set_ylim(0, max(highest, 1) * 1.3)  # room for the legend above the bars
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axvline(mean, color="red", linestyle="--", linewidth=2, gid=GID_MEAN, label=f"mean IoU {mean:.2f}")
    ax.axvline(threshold, color="black", linestyle=":", linewidth=2, gid=GID_THRESHOLD,
               label=f"IoU {threshold:g} (PASCAL VOC): {above:.1%} above")
    ax.set(xlim=(0, 1), xlabel="IoU (predicted box vs ground truth)", ylabel="images",
           title=f"{title} (n = {ious.size:,})")
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_risk_coverage(per_image: pd.DataFrame, path: Path | str | None = None, marks=COVERAGES,
                       title: str = "The most confident photos, test split") -> Figure:
    """The risk-coverage curve (Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks",
    NeurIPS 2017): the accuracy at IoU > 0.5 (PASCAL VOC criterion) and the mean IoU of the most confident
    ``k`` photos, for every ``k``, against their share of all photos.

    Args:
        per_image: rows with ``iou`` and ``confidence`` (:func:`localizer.engine.evaluation.evaluate_model`).
        path: save the figure here as PNG.
        marks: coverages marked with a dot and their accuracy (the risk-coverage table's rows).
        title: axes title (the number of photos is added).

    Returns:
        A figure with 1 axes: both curves in percent (``gid`` :data:`GID_ACCURACY`, :data:`GID_COVERED_IOU`)
        over the share kept, 0-100 %, most confident first; the accuracy at each mark labelled.
    """
    iou, confidence = per_image["iou"].to_numpy(np.float64), per_image["confidence"].to_numpy(np.float64)
    n = len(iou)
    curve = risk_coverage(iou, confidence, np.arange(1, n + 1) / n) * 100
    points = risk_coverage(iou, confidence, marks) * 100
    points["coverage"] = points["photos"] / n  # the share each row keeps (of n photos), on the curve (photos x 100)
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    ax.plot(curve["coverage"], curve["acc_50"], color="tab:blue", gid=GID_ACCURACY,
            label="accuracy at IoU > 0.5 (PASCAL VOC)")
    ax.plot(curve["coverage"], curve["mean_iou"], color="tab:orange", gid=GID_COVERED_IOU, label="mean IoU")
    ax.scatter(points["coverage"], points["acc_50"], color="tab:blue", zorder=3)
    for coverage, accuracy in zip(points["coverage"], points["acc_50"]):
        ax.annotate(f"{accuracy:.1f} %", (coverage, accuracy), xytext=(0, 6), textcoords="offset points",
                    ha="center", fontsize=9, color="tab:blue")
    ax.set(xlim=(0, 101), xlabel="photos kept, the most confident first (%)", ylabel="%",
           title=f"{title} (n = {n:,})")
    ax.set_ylim(top=max(101.5, ax.get_ylim()[1]))
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
