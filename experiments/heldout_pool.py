"""Write the held-out pool: the photos of a data set that no split of the given runs has seen.

The pool is the photos of a large run's data outside its test split and outside every one of the given small runs, as
a YOLO folder (``images/`` and ``labels/``, symbolic links to the originals) that ``evaluate --data`` scores.

A run on a seeded subset (``-p subset=200``) has 30 validation and 30 test photos: one photo is 3.3 points, and two
recipes that differ by a point cannot be told apart. The rest of the same data set can: with the lion photos, the
1,564 photos of the full run's training and validation splits that no subset run used (near-duplicate groups left
out, so no twin of a subset photo is scored; the full run's test split left out, so the full set's goal stays unseen).
Used for ablations 42-44 and the "photos no split has seen" table of docs/results.md:

    python experiments/heldout_pool.py runs/report-quick ../pool/lion-heldout RUN100 RUN200 RUN200S3 RUN400
    python -m localizer evaluate --checkpoint RUN/checkpoints/best.pt --data ../pool/lion-heldout \\
        --out RUN/metrics_pool.json

``runs/report-quick`` is the full lion run (its manifest splits all 2,427 photos); the RUNs are the four subset runs
of docs/results.md (``-p subset=100``, ``subset=200``, ``subset=200 seed=3``, ``subset=400``): 1,564 photos remain.
The originals must be a YOLO folder (``images/NAME.jpg`` beside ``labels/NAME.txt``), as the lion photos are.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd


def pool_rows(full: pd.DataFrame, small: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of ``full`` (a run's manifest) outside its test split, outside every near-duplicate group
    (``dup_group`` > 0) and in none of the ``small`` manifests (by ``file``)."""
    seen = set().union(*(set(m["file"]) for m in small))
    keep = (full["split"] != "test") & (full["dup_group"] == 0) & ~full["file"].isin(seen)
    return full[keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("full_run", type=Path, help="the run on the whole data set (its manifest.csv is read)")
    parser.add_argument("out", type=Path, help="the pool folder to write (must not exist)")
    parser.add_argument("runs", type=Path, nargs="+", help="the subset runs whose photos are left out")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out}: already exists; give a new folder (the pool is written once)")
    full = pd.read_csv(args.full_run / "manifest.csv")
    rows = pool_rows(full, [pd.read_csv(r / "manifest.csv") for r in args.runs])
    (args.out / "images").mkdir(parents=True)
    (args.out / "labels").mkdir()
    for image in map(Path, rows["path"]):
        label = image.parent.parent / "labels" / f"{image.stem}.txt"
        if not label.is_file():
            raise SystemExit(f"{label}: no YOLO label beside {image} (the pool needs a YOLO folder)")
        os.symlink(image.resolve(), args.out / "images" / image.name)
        os.symlink(label.resolve(), args.out / "labels" / label.name)
    print(f"{len(rows)} of {len(full)} photos in {args.out}")


if __name__ == "__main__":
    main()
