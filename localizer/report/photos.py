"""Photo grids of the report, and how every figure is saved and shown (matplotlib only).

Every figure function returns the :class:`matplotlib.figure.Figure` it drew and, when ``path`` is
given, also saves it there at :data:`DPI` dots per inch (the folder is created): as PNG for ``.png``,
as JPEG (quality :data:`JPEG_QUALITY`) for ``.jpg``, the format for grids of photos (a photo grid as
PNG weighs about five times as much). Nothing is shown: in a notebook, :func:`show` displays a
figure (photo grids as JPEG, so that executed notebooks stay small).

Drawing conventions, the same in every figure:

* ground-truth box: **solid white** rectangle (with a thin dark outline so it shows on snow too);
* predicted box: **red dashed** rectangle;
* box coordinates are pixel xyxy ``(xmin, ymin, xmax, ymax)`` of the image they are drawn on
  (continuous coordinates, see :mod:`localizer.boxes`).

The charts (training curves, IoU histogram) are in :mod:`localizer.report.plots`, which offers
the figure functions of this module too, under the same names.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from localizer.boxes import BOX_COLUMNS
from localizer.data.imageio import load_rgb
from localizer.files import save_figure_file

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
#: ``gid`` of the ground-truth and prediction rectangles (for tests and readers to look up).
GID_GT, GID_PRED = "gt_box", "pred_box"


# ----------------------------------------------------------------------------------------- helpers
def _savefig_options(fmt: str, dpi: int) -> dict:
    return {"dpi": dpi, "bbox_inches": "tight", "facecolor": "white",
            "pil_kwargs": {"quality": JPEG_QUALITY} if fmt == "jpeg" else None}


def save_figure(fig: Figure, path: Path | str | None, replace: bool = True) -> Figure:
    """Save ``fig`` at ``path`` (``DPI`` dpi, tight bounding box, folder created, atomically) when
    ``path`` is not None; returns ``fig``. The suffix chooses the format: ``.png``, or ``.jpg`` /
    ``.jpeg`` (JPEG at :data:`JPEG_QUALITY`, for photo grids). ``replace``: a figure of a run's
    ``figures/`` is the run's own, drawn again when a notebook runs again; a command that saves one
    where the user points it checks first (:func:`localizer.files.check_outputs`).

    Raises:
        ValueError: another suffix.
        FileExistsError: ``path`` exists and ``replace`` is False.
    """
    if path is not None:
        path = Path(path)
        formats = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
        if path.suffix.lower() not in formats:
            raise ValueError(f"{path}: save figures as .png or .jpg, not {path.suffix or 'without a suffix'}")
        fmt = formats[path.suffix.lower()]
        save_figure_file(fig, path, fmt, replace=replace, **_savefig_options(fmt, DPI))
    return fig


def show(fig: Figure) -> None:
    """Display ``fig`` in a notebook at :data:`SCREEN_DPI` and close it (so it is shown once): a
    figure with photos in it as JPEG (quality :data:`JPEG_QUALITY`), a chart as PNG. Executed
    notebooks keep every image they show; photos as JPEG keep them a few MB in all."""
    from IPython.display import Image, display

    photos = any(ax.get_images() for ax in fig.axes)
    buffer = io.BytesIO()
    fmt = "jpeg" if photos else "png"
    fig.savefig(buffer, format=fmt, **_savefig_options(fmt, SCREEN_DPI))  # in memory: no file
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
        any_pred |= _photo_panel(ax, *items[index])
        if titles is not None:
            ax.set_title(titles[index], fontsize=11)
    if legend:  # above the grid, in a strip of its own: it never covers a photo or a title
        fig.legend(handles=_box_legend_handles(any_pred), loc="outside upper center", ncol=2, frameon=True,
                   facecolor="0.55", framealpha=1.0, labelcolor="white")
    return save_figure(fig, path)


def _photo_panel(ax, image, gt_box, pred_box) -> bool:
    """Show ``image`` on ``ax`` with its boxes, in a dark frame (a box on the photo's border stays
    visible), without ticks or spines; True when a prediction was drawn."""
    array = _as_image(image)
    ax.imshow(array)
    height, width = array.shape[:2]
    draw_box(ax, gt_box, "gt")
    drawn = draw_box(ax, pred_box, "pred") is not None
    pad = FRAME_SHARE * max(width, height)
    ax.set_xlim(-pad, width + pad)
    ax.set_ylim(height + pad, -pad)
    ax.set_facecolor(FRAME_COLOR)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return drawn


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


def spread_sample(per_image: pd.DataFrame, n: int = 8, seed: int = 0, skip_worst: int = 0) -> pd.DataFrame:
    """``n`` rows spread over the IoU distribution, for a figure of typical predictions: the rows
    sorted by ``iou`` are cut into ``n`` groups of (nearly) equal size by rank (:func:`pandas.qcut`
    of the positions) and one row is drawn from each (``groupby(...).sample``, seeded with ``seed``);
    returned from the lowest IoU to the highest. A plain random sample of a good model shows mostly
    easy photos; this one shows the range, one photo per ``1/n`` quantile. The ``skip_worst``
    lowest-IoU rows are left out first (the ones a figure of the worst predictions shows already),
    but only as many as leave ``n`` rows: a small split (the smoke run's 8 test photos) shows all its
    rows, worst included. All rows when there are ``n`` or fewer.

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
