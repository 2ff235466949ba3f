"""Exploration of a dataset's primary boxes (notebook 01): per-image statistics and their figure.

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
