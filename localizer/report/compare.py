"""Whether two models differ on the same photos by more than chance: paired tests on two per-image tables.

``python -m localizer compare A B`` reads two per-image tables of ``evaluate`` or ``run``
(``RUN/per_image_test.csv``, ``RUN/metrics_val_tta.csv``: a ``file`` and an ``iou`` column) of the
same photos and prints, for model A and model B: the photos above IoU 0.5 (PASCAL VOC criterion)
and the mean IoU; the photos that only one of them gets above 0.5; McNemar's exact test on those (the
two-sided binomial test of the smaller count among the discordant photos at p = 0.5, McNemar,
Psychometrika, 1947; its exact form as in Edwards, 1948; :func:`scipy.stats.binomtest`), whether the
accuracies differ; and the Wilcoxon signed-rank test of the per-photo IoU differences (Wilcoxon,
1945; :func:`scipy.stats.wilcoxon`), whether the mean IoUs do. A p-value above 0.05 says a split of
this size cannot tell the two apart.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy.stats import binomtest, wilcoxon

from localizer.errors import DataError

#: The table a run folder stands for when ``compare`` is given a folder: notebook 04's test split.
RUN_TABLE = "per_image_test.csv"


def read_per_image(path: Path | str, columns: set[str]) -> pd.DataFrame:
    """A per-image CSV (or, for a run folder, its :data:`RUN_TABLE`) that has ``columns``.

    Raises:
        FileNotFoundError: no such file.
        localizer.errors.DataError: not a CSV pandas can read, or ``columns`` missing (the message
            names the file and the columns).
    """
    path = Path(path)
    if path.is_dir():
        path = path / RUN_TABLE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such per-image table")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError("not-a-table", f"not a CSV table ({exc})", path) from exc
    missing = columns - set(table.columns)
    if missing:
        raise DataError("not-a-per-image-table", f"columns missing: {sorted(missing)}", path)
    return table


def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Paired comparison of two per-image tables (``file``, ``iou``) of the same photos, matched by ``file``.

    Returns:
        ``{"photos", "hits_a", "hits_b", "only_a", "only_b", "mcnemar_p", "mean_iou_a", "mean_iou_b",
        "wilcoxon_p"}`` (IoUs as fractions; a p-value is 1.0 when there is nothing to test: no
        discordant photo, or every difference 0).

    Raises:
        ValueError: the tables do not hold the same photos (or none, or one twice), or lack a ``file``
            or ``iou`` column.
    """
    for table in (a, b):
        if not {"file", "iou"} <= set(table.columns):
            raise ValueError("a per-image table needs the columns 'file' and 'iou'")
    if sorted(a["file"]) != sorted(b["file"]):
        raise ValueError(f"the tables are of different photos ({len(a)} and {len(b)} rows)")
    if a.empty:
        raise ValueError("the tables hold no photo")
    twice = a.loc[a["file"].duplicated(), "file"]
    if len(twice):
        raise ValueError(f"a photo has two rows ({twice.iloc[0]})")
    both = a[["file", "iou"]].merge(b[["file", "iou"]], on="file", suffixes=("_a", "_b"))
    hit_a, hit_b = both["iou_a"] > 0.5, both["iou_b"] > 0.5
    only_a, only_b = int((hit_a & ~hit_b).sum()), int((hit_b & ~hit_a).sum())
    discordant = only_a + only_b
    mcnemar = binomtest(min(only_a, only_b), discordant, 0.5).pvalue if discordant else 1.0
    differences = both["iou_a"] - both["iou_b"]
    signed_rank = wilcoxon(differences).pvalue if (differences != 0).any() else 1.0
    return {"photos": len(both), "hits_a": int(hit_a.sum()), "hits_b": int(hit_b.sum()), "only_a": only_a,
            "only_b": only_b, "mcnemar_p": float(mcnemar), "mean_iou_a": float(both["iou_a"].mean()),
            "mean_iou_b": float(both["iou_b"].mean()), "wilcoxon_p": float(signed_rank)}


def compare_files(a: Path | str, b: Path | str) -> dict:
    """:func:`compare` of two per-image CSVs (or run folders, see :func:`read_per_image`).

    Raises:
        FileNotFoundError, localizer.errors.DataError: a table that cannot be read, or tables of
            different photos (the message names both files).
    """
    tables = [read_per_image(path, {"file", "iou"}) for path in (a, b)]
    try:
        return compare(*tables)
    except ValueError as exc:
        raise DataError("different-photos", str(exc), f"{a}, {b}") from exc


def format_comparison(r: dict, a: Path | str, b: Path | str) -> str:
    """The three lines ``compare`` prints for :func:`compare`'s result ``r`` of tables ``a`` and ``b``."""
    n = r["photos"]
    return "\n".join([
        f"{n} photos; A: {a}; B: {b}",
        f"  above IoU 0.5: A {r['hits_a']} ({100 * r['hits_a'] / n:.2f} %), B {r['hits_b']} "
        f"({100 * r['hits_b'] / n:.2f} %); only A {r['only_a']}, only B {r['only_b']}; "
        f"McNemar's exact test p = {r['mcnemar_p']:.3f}",
        f"  mean IoU: A {100 * r['mean_iou_a']:.2f} %, B {100 * r['mean_iou_b']:.2f} %; "
        f"Wilcoxon signed-rank test p = {r['wilcoxon_p']:.3f}",
    ])
