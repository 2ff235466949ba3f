"""Figures of the course report, with matplotlib and seaborn only.

Every function returns the :class:`matplotlib.figure.Figure` it drew and, when ``path`` is given,
also saves it there at :data:`DPI` dots per inch (the folder is created): as PNG for ``.png``, as
JPEG (quality :data:`JPEG_QUALITY`) for ``.jpg``, the format for grids of photos (a photo grid as
PNG weighs about five times as much). Nothing is shown: in a notebook, :func:`show` displays a
figure (photo grids as JPEG, so that executed notebooks stay small).

Drawing conventions, the same in every figure:

* ground-truth box: **solid white** rectangle (with a thin dark outline so it shows on snow too);
* predicted box: **red dashed** rectangle;
* box coordinates are pixel xyxy ``(xmin, ymin, xmax, ymax)`` of the image they are drawn on
  (continuous coordinates, see :mod:`localizer.boxes`).

The four numbered figures of the report are saved under the names of :data:`FIGURE_NAMES`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from localizer.boxes import BOX_COLUMNS
from localizer.data.imageio import load_rgb

#: File names of the report's numbered figures (photo grids as JPEG: see the module docstring).
FIGURE_NAMES = {
    "curves": "figure1_training_curves.png",
    "samples": "figure2_test_samples.jpg",
    "histogram": "figure3_iou_histogram.png",
    "worst": "figure4_worst_predictions.jpg",
}

#: Resolution of saved figures (print quality), and of figures shown in a notebook.
DPI = 150
SCREEN_DPI = 100
#: JPEG quality of saved photo grids (Pillow's scale, 1-95).
JPEG_QUALITY = 90
#: Colour of the frame around each photo of a grid: a box along the photo's border stays visible
#: (white and red lines on a white page would not).
FRAME_COLOR = "0.3"
#: Width of that frame, as a share of the photo's longer side.
FRAME_SHARE = 0.03

GT_STYLE = {"edgecolor": "white", "linestyle": "-", "linewidth": 2.0}
PRED_STYLE = {"edgecolor": "red", "linestyle": "--", "linewidth": 2.0}
#: ``gid`` of the artists tests and readers may look up: ground truth and prediction rectangles,
#: learning-rate drop lines, the mean-IoU line and the threshold line.
GID_GT, GID_PRED, GID_LR_DROP, GID_MEAN, GID_THRESHOLD = "gt_box", "pred_box", "lr_drop", "mean_iou", "threshold"
GID_BEST = "best_epoch"

_COLORS = {"train": "tab:blue", "val": "tab:orange"}


# ----------------------------------------------------------------------------------------- helpers
def _savefig(fig: Figure, target, fmt: str, dpi: int) -> None:
    pil_kwargs = {"quality": JPEG_QUALITY} if fmt == "jpeg" else None
    fig.savefig(target, format=fmt, dpi=dpi, bbox_inches="tight", facecolor="white", pil_kwargs=pil_kwargs)


def save_figure(fig: Figure, path: Path | str | None) -> Figure:
    """Save ``fig`` at ``path`` (``DPI`` dpi, tight bounding box, folder created) when ``path`` is
    not None; returns ``fig``. The suffix chooses the format: ``.png``, or ``.jpg`` / ``.jpeg``
    (JPEG at :data:`JPEG_QUALITY`, for photo grids).

    Raises:
        ValueError: another suffix.
    """
    if path is not None:
        path = Path(path)
        formats = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
        if path.suffix.lower() not in formats:
            raise ValueError(f"{path}: save figures as .png or .jpg, not {path.suffix or 'without a suffix'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        _savefig(fig, path, formats[path.suffix.lower()], DPI)
    return fig


def show(fig: Figure) -> None:
    """Display ``fig`` in a notebook at :data:`SCREEN_DPI` and close it (so it is shown once): a
    figure with photos in it as JPEG (quality :data:`JPEG_QUALITY`), a chart as PNG. Executed
    notebooks keep every image they show; photos as JPEG keep them a few MB in all."""
    from IPython.display import Image, display

    photos = any(ax.get_images() for ax in fig.axes)
    buffer = io.BytesIO()
    _savefig(fig, buffer, "jpeg" if photos else "png", SCREEN_DPI)
    plt.close(fig)
    display(Image(data=buffer.getvalue(), format="jpeg" if photos else "png"))


def _as_image(image) -> np.ndarray:
    """A PIL image, an ``(H, W, 3)`` array or a ``(3, H, W)`` tensor -> ``(H, W, 3)`` array that
    :func:`matplotlib.pyplot.imshow` shows as is (uint8, or float in [0, 1])."""
    if hasattr(image, "detach"):  # torch tensor / tv_tensors.Image, channels first
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
            image = np.moveaxis(image, 0, -1)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float64)
    if array.max(initial=0.0) > 1.0:  # 0..255 values in a float or integer array
        return np.clip(array, 0, 255).astype(np.uint8)
    return np.clip(array, 0.0, 1.0)


def _as_box(box) -> np.ndarray | None:
    """A box as ``(4,)`` float64 pixel xyxy (from a list, array, ``(1, 4)`` tensor or
    ``BoundingBoxes``), or None."""
    if box is None:
        return None
    if hasattr(box, "detach"):
        box = box.detach().cpu().numpy()
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.size != 4:
        raise ValueError(f"a box has 4 numbers (xmin, ymin, xmax, ymax), got {box.size}")
    return box


def draw_box(ax, box, kind: str = "gt") -> Rectangle | None:
    """Draw one pixel xyxy ``box`` on ``ax`` as a ground truth (``kind="gt"``: white solid) or a
    prediction (``kind="pred"``: red dashed) :class:`~matplotlib.patches.Rectangle`; returns it
    (None when ``box`` is None)."""
    box = _as_box(box)
    if box is None:
        return None
    style, gid = (GT_STYLE, GID_GT) if kind == "gt" else (PRED_STYLE, GID_PRED)
    xmin, ymin, xmax, ymax = box
    # not clipped: a box along the image border stays fully visible
    rect = Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, gid=gid, clip_on=False, **style)
    if kind == "gt":  # a dark halo keeps the white line visible on bright backgrounds
        rect.set_path_effects([patheffects.withStroke(linewidth=3.5, foreground="black", alpha=0.6),
                               patheffects.Normal()])
    ax.add_patch(rect)
    return rect


def _box_legend_handles(with_pred: bool) -> list[Line2D]:
    handles = [Line2D([], [], color="white", linestyle="-", linewidth=2,
                      path_effects=[patheffects.withStroke(linewidth=3.5, foreground="black", alpha=0.6)],
                      label="ground truth")]
    if with_pred:
        handles.append(Line2D([], [], color="red", linestyle="--", linewidth=2, label="prediction"))
    return handles


# ----------------------------------------------------------------------------------------- figures
def plot_samples(
    items,
    ncols: int = 4,
    titles: list[str] | None = None,
    path: Path | str | None = None,
    panel_size: float = 3.2,
    legend: bool = True,
) -> Figure:
    """A grid of images with their boxes.

    Args:
        items: sequence of ``(image, gt_box, pred_box)``: ``image`` a PIL image or an ``(H, W, 3)``
            uint8 array (a ``(3, H, W)`` tensor also works); ``gt_box`` and ``pred_box`` pixel xyxy
            ``(xmin, ymin, xmax, ymax)`` in that image's pixels, or None. Ground truth is drawn as
            a solid white rectangle, the prediction as a red dashed one.
        ncols: images per row (fewer when there are fewer images).
        titles: one title per image (e.g. ``"IoU 0.83"``), or None.
        path: save the figure here as PNG.
        panel_size: inches per image panel.
        legend: add a legend of the box styles under the grid.

    Returns:
        A figure with one axes per item (axis off), row by row.

    Raises:
        ValueError: no items, or ``titles`` of another length.
    """
    items = list(items)
    if not items:
        raise ValueError("plot_samples needs at least one (image, gt_box, pred_box) item")
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"{len(titles)} titles for {len(items)} images")
    ncols = max(1, min(ncols, len(items)))
    nrows = math.ceil(len(items) / ncols)
    # constrained layout keeps titles, photos and the legend apart however many rows there are
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, (panel_size + 0.3) * nrows + 0.4),
                             squeeze=False, layout="constrained")
    any_pred = False
    for index, ax in enumerate(axes.flat):
        if index >= len(items):
            fig.delaxes(ax)
            continue
        image, gt_box, pred_box = items[index]
        array = _as_image(image)
        ax.imshow(array)
        height, width = array.shape[:2]
        draw_box(ax, gt_box, "gt")
        any_pred |= draw_box(ax, pred_box, "pred") is not None
        pad = FRAME_SHARE * max(width, height)  # a dark frame: boxes on the photo's border stay visible
        ax.set_xlim(-pad, width + pad)
        ax.set_ylim(height + pad, -pad)
        ax.set_facecolor(FRAME_COLOR)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if titles is not None:
            ax.set_title(titles[index], fontsize=11)
    if legend:  # above the grid, in a strip of its own: it never covers a photo or a title
        fig.legend(handles=_box_legend_handles(any_pred), loc="outside upper center", ncol=2, frameon=True,
                   facecolor="0.55", framealpha=1.0, labelcolor="white")
    return save_figure(fig, path)


#: A learning-rate change counts as a drop (a step of a schedule such as ReduceLROnPlateau's x0.1)
#: when the new rate is at most this share of the previous one.
LR_DROP_RATIO = 0.5


def plot_rows(table: pd.DataFrame, titles: list[str] | None = None, path: Path | str | None = None,
              **kwargs) -> Figure:
    """:func:`plot_samples` of a table's rows (a scan table, a manifest, a per-image evaluation table):
    each row's photo (column ``path``, decoded with :func:`localizer.data.imageio.load_rgb`) with its
    ground truth ``xmin..ymax`` and, when the table has them, its prediction ``pred_xmin..pred_ymax``
    (pixel xyxy of the photo). ``kwargs`` go to :func:`plot_samples`."""
    predicted = all(f"pred_{c}" in table for c in BOX_COLUMNS)
    items = [(load_rgb(row["path"]), tuple(row[c] for c in BOX_COLUMNS),
              tuple(row[f"pred_{c}"] for c in BOX_COLUMNS) if predicted else None) for _, row in table.iterrows()]
    return plot_samples(items, titles=titles, path=path, **kwargs)


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


def plot_training_curves(history, loss_name: str = "Smooth L1", path: Path | str | None = None,
                         schedule: str = "plateau") -> Figure:
    """Figure 1: training curves, two panels.

    Args:
        history: a training history (:func:`localizer.engine.training.train`'s table, ``history.csv``, or
            a list of dicts) with columns ``epoch`` (1-based), ``train_loss``, ``val_loss`` (mean
            loss per batch), ``train_iou``, ``val_iou`` (mean IoU, 0..1), ``lr`` (learning rate
            used in that epoch) and ``seconds``.
        loss_name: name of the loss for the left panel's title and axis.
        path: save the figure here as PNG.
        schedule: the run's learning-rate schedule (``TrainConfig.schedule``). Drops are marked for
            ``plateau`` only: a smooth schedule has none, and a short cosine one (2 epochs: 1e-3,
            then 5e-4) would look like a step to :func:`lr_drops`.

    Returns:
        A figure with 2 axes: left, train and val loss per epoch; right, train and val mean IoU per
        epoch; whole-number epoch ticks. The epoch of the best validation mean IoU (the checkpoint
        ``best.pt`` keeps and notebook 04 tests) is a green vertical line in both panels (``gid``
        :data:`GID_BEST`). Each learning-rate drop (:func:`lr_drops`) is a vertical dotted line in
        both panels (``gid`` :data:`GID_LR_DROP`), labelled with the new rate.
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
    drops = lr_drops(history)
    if schedule != "plateau":
        drops = drops.iloc[:0]
    best = history.loc[history["val_iou"].idxmax()]
    for ax in (ax_loss, ax_iou):
        ax.axvline(best["epoch"], color="tab:green", linewidth=1.5, alpha=0.8, gid=GID_BEST,
                   label=f"best val IoU {best['val_iou']:.3f} (epoch {int(best['epoch'])}, tested)")
        for number, (epoch, lr) in enumerate(zip(drops["epoch"], drops["lr"])):
            ax.axvline(epoch, color="0.35", linestyle=":", linewidth=1.5, gid=GID_LR_DROP,
                       label="learning-rate drop" if number == 0 else None)
            # above the plotting area (under the title), where no curve or legend can hide it
            ax.annotate(f"lr {lr:.3g}", xy=(epoch, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8.5,
                        color="0.25", gid=GID_LR_DROP)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        first, last = int(epochs.min()), int(epochs.max())
        ax.set_xlim(first - 0.5, last + 0.5)
        if last - first < 15:
            ax.set_xticks(range(first, last + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    pad = 16 if len(drops) else 6
    ax_loss.set_title(f"{loss_name} loss per epoch", pad=pad)
    ax_iou.set_title("Mean IoU per epoch", pad=pad)
    ax_loss.set(ylabel=f"{loss_name} loss")
    ax_iou.set(ylabel="mean IoU", ylim=(0, 1))
    ax_loss.legend(loc="best")
    ax_iou.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


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


def plot_augmentation(image, box, augmented_image, augmented_box, path: Path | str | None = None,
                      titles: tuple[str, str] = ("original", "horizontal flip")) -> Figure:
    """Before/after of an augmentation (the horizontal flip) on one image with its box.

    Args:
        image, augmented_image: PIL images, ``(H, W, 3)`` uint8 arrays or ``(3, H, W)`` tensors.
        box, augmented_box: the box on each image, pixel xyxy ``(4,)`` or ``(1, 4)`` (list, array,
            tensor or ``BoundingBoxes``).
        path: save the figure here as PNG.
        titles: panel titles; the box coordinates are added under each.

    Returns:
        A figure with 2 axes (axis off), the box drawn solid white on both.
    """
    items = [(image, box, None), (augmented_image, augmented_box, None)]
    labels = [f"{title}\nbox ({', '.join(f'{v:.0f}' for v in _as_box(b))})"
              for title, (_, b, _) in zip(titles, items)]
    return plot_samples(items, ncols=2, titles=labels, path=path, panel_size=4.0, legend=False)
