"""The manifest of a run: its recipe's split of a scan of its data (``manifest.csv`` of the run folder)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from localizer.boxes import ALL_BOXES_COLUMN
from localizer.data.scans import SCAN_FIELDS
from localizer.data.split import NotEnoughDataError, assign_split, export_split, split_leaks
from localizer.data.validation import ScanResult
from localizer.errors import ConfigError
from localizer.recipe import ALL_BOXES_HEADS, TrainConfig, recipe_values


def make_manifest(config: TrainConfig, scan: ScanResult) -> pd.DataFrame:
    """The split of ``config`` on ``scan`` (a scan of ``config.data`` read as the recipe says): the seeded
    ``subset`` if any, split by ``config.split`` (the seeded 70/15/15 split, or ``"export"``, the export's own
    train/valid/test folders); every box of a photo kept only for a head that trains on them. The same config
    and data give the same manifest anywhere (see :func:`localizer.data.split.assign_split`).

    Raises:
        localizer.errors.ConfigError: ``scan`` is of other data, or read otherwise, than ``config`` says.
        localizer.data.split.NotEnoughDataError: too few usable photos for the split (the message names
            the data folder, the number of usable photos and how many the split needs).
    """
    wanted = recipe_values(config, list(SCAN_FIELDS))
    scanned = {**scan.settings, "data": str(Path(scan.settings["data"]).resolve())}
    all_boxes = config.head in ALL_BOXES_HEADS
    if scanned != wanted or (all_boxes and ALL_BOXES_COLUMN not in scan.table):
        raise ConfigError(f"the scan read {scanned} (every box: {ALL_BOXES_COLUMN in scan.table}); the recipe needs "
                          f"{wanted} (every box: {all_boxes})")
    table = scan.table if all_boxes else scan.table.drop(columns=ALL_BOXES_COLUMN, errors="ignore")
    if config.subset and config.subset < len(table):
        table = table.sort_values("file").sample(n=config.subset, random_state=config.seed)
    try:
        if config.split == "export":
            manifest = export_split(table, scan.report)
            if split_leaks(manifest):
                warnings.warn(f"{config.data}: {split_leaks(manifest)} groups of near-duplicate photos lie in more "
                              "than one of the export's splits (a test photo may have a twin in training)")
            return manifest
        return assign_split(table, seed=config.seed, fractions=config.fractions)
    except NotEnoughDataError as exc:
        raise NotEnoughDataError(exc.reason, exc.detail, config.data) from None
