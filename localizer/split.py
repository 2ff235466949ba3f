"""Seeded train/val/test split and the manifest CSV that records it.

The split is the course report's: a seeded random 70/15/15 split with sizes ``floor(0.70 N)``,
``floor(0.15 N)`` and the rest (N = 3,179 gives 2,225/476/478; N = 2,427 gives 1,698/364/365).
Rows are sorted by ``file`` (path relative to the data folder) before the permutation, so the same
seed gives the same split on any machine, wherever the data folder lies.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .files import atomic_write_text

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
DEFAULT_SEED = 42


def split_sizes(n: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> tuple[int, int, int]:
    """Sizes ``(floor(f_train N), floor(f_val N), rest)`` of a split of ``n`` items.

    Raises:
        localizer.errors.ConfigError: negative ``n``, or fractions that are negative or do not sum to 1.
    """
    if n < 0:
        raise ConfigError(f"cannot split {n} items")
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ConfigError(f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    # The small epsilon keeps floor(0.7 * 10) == 7 although 0.7 * 10 == 6.999999999999999 in floats.
    n_train = math.floor(fractions[0] * n + 1e-9)
    n_val = math.floor(fractions[1] * n + 1e-9)
    return n_train, n_val, n - n_train - n_val


def assign_split(
    table: pd.DataFrame,
    seed: int = DEFAULT_SEED,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> pd.DataFrame:
    """Return a copy of ``table`` sorted by ``file`` with a ``split`` column (train/val/test).

    The permutation is ``numpy.random.default_rng(seed).permutation(N)`` (PCG64, identical on every
    platform); the first ``floor(0.70 N)`` permuted rows are train, the next ``floor(0.15 N)`` val.

    Raises:
        KeyError: ``table`` has no ``file`` column.
        localizer.errors.ConfigError: bad fractions (see :func:`split_sizes`).
    """
    ordered = table.sort_values("file", ignore_index=True)
    n_train, n_val, _ = split_sizes(len(ordered), fractions)
    order = np.random.default_rng(seed).permutation(len(ordered))
    labels = np.empty(len(ordered), dtype=object)
    labels[order[:n_train]] = "train"
    labels[order[n_train:n_train + n_val]] = "val"
    labels[order[n_train + n_val:]] = "test"
    ordered["split"] = labels
    return ordered


def save_manifest(table: pd.DataFrame, path: Path | str, overwrite: bool = False) -> Path:
    """Write a split table (with ``split``) as a manifest CSV.

    Raises:
        FileExistsError: ``path`` exists with different content and ``overwrite`` is False (a run's
            manifest is never silently replaced).
        KeyError: no ``split`` column.
    """
    path = Path(path)
    if "split" not in table.columns:
        raise KeyError("the table has no 'split' column: call assign_split first")
    text = table.to_csv(index=False)
    if path.exists() and not overwrite and path.read_text() != text:
        raise FileExistsError(f"{path} already exists with another split; replace it with --overwrite "
                              "(overwrite=True in Python) or choose another run folder")
    return atomic_write_text(path, text)


def load_manifest(path: Path | str) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`save_manifest`.

    Raises:
        FileNotFoundError: no such file.
        localizer.errors.DataError: columns missing (the message names the file and the columns).
    """
    path = Path(path)
    table = pd.read_csv(path)
    required = {"file", "path", "width", "height", "xmin", "ymin", "xmax", "ymax", "split"}
    missing = required - set(table.columns)
    if missing:
        raise DataError("not-a-manifest", f"columns missing: {sorted(missing)}", path)
    return table
