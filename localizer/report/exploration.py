"""Looking at the data before training: the primary boxes' statistics and their figure (notebook
01), and what training's augmentation does to a few photos (notebook 02).

All quantities are fractions of the image, so that images of any size compare; y points down, as
in the image.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
import torch
from torchvision.transforms.v2 import functional as F

from localizer.boxes import hflip_boxes
from localizer.data.imageio import load_rgb
from localizer.data.batch_augment import JITTER_OPS, BatchAugment, apply_augment
from localizer.data.datasets import normalized_targets
from localizer.data.transforms import resize_image
from localizer.report.plots import save_figure


def box_statistics(table: pd.DataFrame) -> pd.DataFrame:
    """Per-image box statistics of a scan table (columns ``width, height, xmin, ymin, xmax, ymax``,
    pixels): ``box_width``, ``box_height`` (fractions of the image side), ``aspect_ratio`` (box
    width / box height in pixels), ``center_x``, ``center_y`` (fractions, y downwards) and
    ``relative_area`` (box area / image area)."""
    w = (table["xmax"] - table["xmin"]) / table["width"]
    h = (table["ymax"] - table["ymin"]) / table["height"]
    return pd.DataFrame({
        "box_width": w,
        "box_height": h,
        "aspect_ratio": (table["xmax"] - table["xmin"]) / (table["ymax"] - table["ymin"]),
        "center_x": (table["xmin"] + table["xmax"]) / 2 / table["width"],
        "center_y": (table["ymin"] + table["ymax"]) / 2 / table["height"],
        "relative_area": w * h,
    }).reset_index(drop=True)


def plot_box_statistics(table: pd.DataFrame, path: Path | str | None = None) -> Figure:
    """Distributions of the primary boxes of a dataset, six panels.

    Args:
        table: a scan table (:attr:`localizer.data.validation.ScanResult.table` or a manifest), one row
            per image with ``width``, ``height`` (image size, pixels) and ``xmin, ymin, xmax, ymax``
            (primary box, pixel xyxy).
        path: save the figure here as PNG.

    Returns:
        A figure with 6 axes: box width and height (fraction of the image side), aspect ratio
        (width / height, log scale), box centre (x, y) in the image frame (y downwards as in the
        image), relative area (box area / image area) and box width vs height.
    """
    stats = box_statistics(table)
    fig, axes = plt.subplots(2, 3, figsize=(14, 8.2))
    fig.suptitle(f"Primary boxes of {len(stats):,} images", fontsize=14)
    bins = np.linspace(0, 1, 21)
    panels = [
        (axes[0, 0], "box_width", "box width / image width", "Box width"),
        (axes[0, 1], "box_height", "box height / image height", "Box height"),
        (axes[1, 1], "relative_area", "box area / image area", "Relative area"),
    ]
    for ax, column, xlabel, title in panels:
        sns.histplot(stats[column], bins=bins, ax=ax, color="tab:blue", edgecolor="white")
        median = stats[column].median()
        ax.axvline(median, color="black", linestyle=":", linewidth=1.5, label=f"median {median:.2f}")
        ax.set(xlim=(0, 1), xlabel=xlabel, ylabel="images", title=title)
        ax.legend(loc="upper left", frameon=False)
    _aspect_ratio_panel(axes[0, 2], stats["aspect_ratio"])
    _scatter_panels(axes[1, 0], axes[1, 2], stats)
    fig.tight_layout()
    return save_figure(fig, path)


def _aspect_ratio_panel(ax, aspect_ratio: pd.Series) -> None:
    """Histogram of box width / height on a log axis (square boxes marked)."""
    ratios = aspect_ratio.clip(lower=1e-3)
    low, high = np.log10(ratios.min()), np.log10(ratios.max())
    span = max(high - low, 0.2)
    edges = np.logspace(low - 0.05 * span, high + 0.05 * span, 25)
    sns.histplot(ratios, bins=edges, ax=ax, color="tab:green", edgecolor="white")
    ax.set_xscale("log")
    ax.set_xlim(edges[0] / 1.1, edges[-1] * 1.1)
    ticks = [t for t in (1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8) if edges[0] / 1.1 <= t <= edges[-1] * 1.1]
    ax.xaxis.set_major_locator(FixedLocator(ticks or [1]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(1.0, color="black", linestyle=":", linewidth=1.5, label="square (1.0)")
    ax.set(xlabel="box width / box height (pixels, log scale)", ylabel="images", title="Aspect ratio")
    ax.legend(loc="upper left", frameon=False)


def _scatter_panels(centre_ax, size_ax, stats: pd.DataFrame) -> None:
    """Box centres in the image frame (with density contours from 20 images on), and width vs height."""
    sns.scatterplot(x=stats["center_x"], y=stats["center_y"], ax=centre_ax, s=8, alpha=0.35, linewidth=0,
                    color="tab:purple")
    if len(stats) >= 20:
        sns.kdeplot(x=stats["center_x"], y=stats["center_y"], ax=centre_ax, levels=5, color="black",
                    linewidths=0.8, warn_singular=False)
    centre_ax.set(xlim=(0, 1), ylim=(1, 0), xlabel="centre x / image width", ylabel="centre y / image height",
                  title="Box centre (image frame)")
    centre_ax.set_aspect("equal")
    sns.scatterplot(x=stats["box_width"], y=stats["box_height"], ax=size_ax, s=8, alpha=0.35, linewidth=0,
                    color="tab:red")
    size_ax.plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=1)
    size_ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="box width / image width", ylabel="box height / image height",
                title="Width vs height")
    size_ax.set_aspect("equal")


def augmentation_examples(rows: pd.DataFrame, image_size: int, affine_p: float, seed: int) -> tuple[list, list[str]]:
    """What training's augmentation does to a few photos, as :func:`localizer.report.plots.plot_samples`
    items and titles, one row of ``len(rows)`` panels each:

    1. the photos as the training cache holds them: decoded and resized to ``image_size`` ×
       ``image_size`` (:func:`localizer.data.transforms.resize_image`), with their primary box;
    2. one draw of ``BatchAugment(affine_p=affine_p)``, the augmentation training builds
       (:func:`localizer.engine.training.train`), titled with what was drawn (flip, scale + shift,
       jitter factors);
    3. only when ``affine_p`` is 0: the scale + shift alone forced on every photo (``affine_p = 1``,
       no flip, no jitter), to show what the recipe leaves out.

    Args:
        rows: manifest rows (``path`` and the pixel box ``xmin..ymax`` of the original photo).
        image_size: the recipe's input side, pixels.
        affine_p: the recipe's probability of the scale + shift.
        seed: seeds the draws (in a fork of torch's global generator: the caller's stream is unchanged).

    Returns:
        ``(items, titles)``: ``(image (3, S, S) uint8 or float in [0, 1], pixel xyxy box, None)`` per
        panel, row after row, and one title per panel.
    """
    images = torch.stack([F.pil_to_tensor(resize_image(load_rgb(path), image_size)) for path in rows["path"]])
    boxes = torch.from_numpy(normalized_targets(rows))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        params = BatchAugment(affine_p=affine_p).sample(len(images))
        affine_only = BatchAugment(flip_p=0.0, color_jitter={}, affine_p=1.0).sample(len(images))
    rows_out = [(images.float() / 255, boxes, ["as cached"] * len(images))]
    augmented, moved = apply_augment(images, boxes, params)
    rows_out.append((augmented, moved, [_drawn(params, i, boxes, moved) for i in range(len(images))]))
    if not affine_p:
        augmented, moved = apply_augment(images, boxes, affine_only)
        rows_out.append((augmented, moved, [f"affine_p = 1:\n{_geometry(affine_only, i, boxes, moved)}"
                                            for i in range(len(images))]))
    items = [(image, box * image_size, None)
             for batch, row_boxes, _ in rows_out for image, box in zip(batch, row_boxes)]
    return items, [title for _, _, titles in rows_out for title in titles]


def _drawn(params, i: int, before: torch.Tensor, after: torch.Tensor) -> str:
    """A panel title: what :class:`~localizer.data.batch_augment.AugmentParams` drew for image ``i``."""
    parts = ["flipped" if params.flip[i] else "not flipped"]
    if params.affine is not None and params.affine[i]:
        parts.append(_geometry(params, i, before, after))
    factors = [f"{op[0]} ×{f:.2f}" for op, f in zip(JITTER_OPS, params.factors[i].tolist()) if op in params.order]
    return ", ".join(parts) + ("\n" + " ".join(factors) if factors else "")


def _geometry(params, i: int, before: torch.Tensor, after: torch.Tensor) -> str:
    """The scale + shift drawn for image ``i`` (shift as shares of the width / height), or that it
    was refused (the box unchanged but for the flip: the animal would have left the frame)."""
    expected = hflip_boxes(before[i:i + 1])[0] if params.flip[i] else before[i]
    if torch.allclose(after[i], expected):
        return "scale + shift refused"
    return f"scale {params.scale[i]:.2f}, shift {params.shift[i, 0]:+.0%} / {params.shift[i, 1]:+.0%}"
