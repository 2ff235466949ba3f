"""Seeded train/val/test split and the manifest CSV that records it.

The split is the course report's: a seeded random 70/15/15 split with sizes ``floor(0.70 N)``,
``floor(0.15 N)`` and the rest (N = 3,179 gives 2,225/476/478; N = 2,427 gives 1,698/364/365).
Rows are sorted by ``file`` (path relative to the data folder) before the permutation, so the same
seed gives the same split on any machine, wherever the data folder lies.

Near-duplicate photos (column ``dup_group``, see :mod:`localizer.data.duplicates`) are split as one
unit: a group lands whole in one split, so no test photo has a twin in training. The sizes stay as
close to the ones above as the groups allow (with only single photos, exactly those, and the very
same split as without grouping).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from localizer.errors import ConfigError, DataError
from localizer.files import atomic_write_text

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


class NotEnoughDataError(DataError):
    """Too few usable photos (or too few groups of near-duplicates) to fill every split."""


def minimum_photos(fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> int:
    """The smallest N whose split (:func:`split_sizes`) has at least one photo in each of train, val
    and test (7 for 70/15/15).

    Raises:
        localizer.errors.ConfigError: bad fractions, or a zero fraction (no N fills that split).
    """
    split_sizes(0, fractions)  # checks the fractions
    if min(fractions) <= 0:
        raise ConfigError(f"split fractions {fractions} leave a split empty; each must be > 0")
    n = 1
    while min(split_sizes(n, fractions)) < 1:
        n += 1
    return n


def assign_split(
    table: pd.DataFrame,
    seed: int = DEFAULT_SEED,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> pd.DataFrame:
    """Return a copy of ``table`` sorted by ``file`` with a ``split`` column (train/val/test).

    The permutation is ``numpy.random.default_rng(seed).permutation(N)`` (PCG64, identical on every
    platform). Rows are visited in permuted order; the first time a row of a group of near-duplicates
    (``dup_group > 0``; a row without the column, or with 0, is a group of its own) is visited, the
    whole group goes to the first split that still has room for it: train up to ``floor(0.70 N)``
    rows, then val up to ``floor(0.15 N)``, then test. Without near-duplicates the first
    ``floor(0.70 N)`` permuted rows are train and the next ``floor(0.15 N)`` val.

    Raises:
        KeyError: ``table`` has no ``file`` column.
        localizer.errors.ConfigError: bad fractions (see :func:`split_sizes`).
        NotEnoughDataError: a split would be empty; the message names the number of usable photos
            (and groups) and how many the split needs (:func:`minimum_photos`).
    """
    ordered = table.sort_values("file", ignore_index=True)
    n = len(ordered)
    sizes = split_sizes(n, fractions)
    if n < minimum_photos(fractions):
        raise NotEnoughDataError("not-enough-data", _too_few(n, fractions))
    groups = ordered["dup_group"].to_numpy() if "dup_group" in ordered else np.zeros(n, dtype=np.int64)
    # a photo without twins is a unit of its own; each group of twins is one unit
    units = np.where(groups > 0, groups, -1 - np.arange(n))
    members = pd.Series(np.arange(n)).groupby(units).apply(list).to_dict()
    labels = np.full(n, None, dtype=object)
    filled = [0, 0, 0]
    for row in np.random.default_rng(seed).permutation(n):
        if labels[row] is not None:
            continue
        rows = members[units[row]]
        target = next((i for i in (0, 1) if filled[i] + len(rows) <= sizes[i]), 2)
        labels[rows] = SPLITS[target]
        filled[target] += len(rows)
    if min(filled) == 0:
        raise NotEnoughDataError("not-enough-data", _too_few(n, fractions, len(members)))
    ordered["split"] = labels
    return ordered


def export_split(table: pd.DataFrame, report: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``table`` sorted by ``file`` with the ``split`` an export put each photo in: the
    ``export_split`` column of the scan's ``report`` (:func:`localizer.data.readers.export_split`: a
    Roboflow ``train/``, ``valid/``, ``test/`` folder, say), the recipe's ``split="export"``. Near-duplicates
    are not moved: twins that the export put in two splits stay there (the caller warns).

    Raises:
        NotEnoughDataError: a usable photo has no export split (the message names how many and one of
            them), or one of train, val and test is empty (an export without a test split, say): use the
            seeded split (``split="seeded"``) then.
    """
    ordered = table.sort_values("file", ignore_index=True)
    splits = report.set_index("file")["export_split"] if "export_split" in report else pd.Series(dtype=str)
    labels = ordered["file"].map(splits).fillna("")
    missing = ordered.loc[labels == "", "file"]
    if len(missing):
        raise NotEnoughDataError("no-export-split", f"{len(missing)} of {len(ordered)} usable photos are in no "
                                 f"train/valid/test folder of an export (e.g. {missing.iloc[0]}); use split=\"seeded\"")
    empty = [name for name in SPLITS if not (labels == name).any()]
    if empty:
        raise NotEnoughDataError("no-export-split", f"the export's own split has no {' or '.join(empty)} photos "
                                 f"({dict(labels.value_counts())}); use split=\"seeded\"")
    ordered["split"] = labels.to_numpy()
    return ordered


def split_leaks(manifest: pd.DataFrame) -> int:
    """How many groups of near-duplicate photos (``dup_group > 0``) lie in more than one split (0 for a
    seeded split, which keeps each group whole)."""
    groups = manifest[manifest["dup_group"] > 0] if "dup_group" in manifest else manifest.iloc[:0]
    return int((groups.groupby("dup_group")["split"].nunique() > 1).sum())


def _too_few(n: int, fractions: tuple[float, float, float], units: int | None = None) -> str:
    split = "/".join(f"{100 * f:g}" for f in fractions)
    grouped = f" ({units} once near-duplicates are grouped)" if units is not None else ""
    return (f"only {n} usable photos{grouped}: a {split} train/val/test split needs at least "
            f"{minimum_photos(fractions)} separate photos, so that train, val and test each get one "
            f"(their sizes are floor({fractions[0]:g} N), floor({fractions[1]:g} N) and the rest)")


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
    return atomic_write_text(path, text, replace=True)


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
