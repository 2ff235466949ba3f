"""Whether two models differ on the same photos by more than chance: paired tests on two per-image tables.

Reads two per-image tables of ``python -m localizer evaluate`` or ``run`` (``RUN/per_image_test.csv``,
``RUN/metrics_val_tta.csv``: a ``file`` and an ``iou`` column) of the same photos and prints, for
model A and model B: the photos above IoU 0.5 (PASCAL VOC criterion) and the mean IoU; the photos
that only one of them gets above 0.5; McNemar's exact test on those (the two-sided binomial test of
the smaller count among the discordant photos at p = 0.5, McNemar, Psychometrika, 1947; its exact form
as in Edwards, 1948), whether the accuracies differ; and the Wilcoxon signed-rank test of the
per-photo IoU differences (Wilcoxon, 1945; :func:`scipy.stats.wilcoxon`), whether the mean IoUs do.
A p-value above 0.05 says a split of this size cannot tell the two apart. Example (seconds)::

    python benchmarks/compare_runs.py runs/report-softargmax/per_image_test.csv runs/report/per_image_test.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy.stats import binomtest, wilcoxon


def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Paired comparison of two per-image tables (``file``, ``iou``) of the same photos.

    Returns:
        ``{"photos", "hits_a", "hits_b", "only_a", "only_b", "mcnemar_p", "mean_iou_a", "mean_iou_b",
        "wilcoxon_p"}`` (IoUs as fractions; ``wilcoxon_p`` is 1.0 when every difference is 0).

    Raises:
        ValueError: the tables do not hold the same photos, or lack a ``file`` or ``iou`` column.
    """
    for table in (a, b):
        if not {"file", "iou"} <= set(table.columns):
            raise ValueError("a per-image table needs the columns 'file' and 'iou'")
    if sorted(a["file"]) != sorted(b["file"]):
        raise ValueError(f"the tables are of different photos ({len(a)} and {len(b)} rows)")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="per-image table of model A (CSV)")
    parser.add_argument("b", type=Path, help="per-image table of model B (CSV), the same photos")
    args = parser.parse_args()
    try:
        r = compare(pd.read_csv(args.a), pd.read_csv(args.b))
    except ValueError as exc:
        parser.error(f"{args.a}, {args.b}: {exc}")
    n = r["photos"]
    print(f"{n} photos; A: {args.a}; B: {args.b}")
    print(f"  above IoU 0.5: A {r['hits_a']} ({100 * r['hits_a'] / n:.2f} %), B {r['hits_b']} "
          f"({100 * r['hits_b'] / n:.2f} %); only A {r['only_a']}, only B {r['only_b']}; "
          f"McNemar's exact test p = {r['mcnemar_p']:.3f}")
    print(f"  mean IoU: A {100 * r['mean_iou_a']:.2f} %, B {100 * r['mean_iou_b']:.2f} %; "
          f"Wilcoxon signed-rank test p = {r['wilcoxon_p']:.3f}")


if __name__ == "__main__":
    main()
