"""The analysis commands: ``compare`` (two models on the same photos, paired tests),
``several-animals`` (what a model's misses on photos with several animals are) and ``review`` (the
photos whose label most disagrees with a confident prediction).

Their logic is :mod:`localizer.report.compare`, :mod:`localizer.report.several` and
:mod:`localizer.report.confidence`; each ``cmd_*`` takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_compare_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, metavar="A",
                        help="per-image table of model A (CSV; a run folder: its per_image_test.csv)")
    parser.add_argument("b", type=Path, metavar="B",
                        help="per-image table of model B, of the same photos (or a run folder)")


def cmd_compare(args: argparse.Namespace) -> int:
    from localizer.report.compare import RUN_TABLE, compare_files, format_comparison

    a, b = (path / RUN_TABLE if path.is_dir() else path for path in (args.a, args.b))
    print(format_comparison(compare_files(a, b), a, b))
    return 0


def add_several_animals_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="the run folder the table is of (its data, format, classes)")
    parser.add_argument("table", type=Path, nargs="?",
                        help="a per-image table of `evaluate`, e.g. RUN/metrics_val_tta.csv (default: "
                             "RUN/per_image_test.csv, notebook 04's)")


def cmd_several_animals(args: argparse.Namespace) -> int:
    from localizer.report.compare import RUN_TABLE, read_per_image
    from localizer.report.several import COLUMNS, format_several, several_animals

    path = args.table or args.run / RUN_TABLE
    table = read_per_image(path, COLUMNS)
    print(format_several(several_animals(args.run, table), len(table), path))
    return 0


#: How many photos ``review`` lists and draws by default.
REVIEW_TOP = 12


def add_review_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="a trained run folder")
    parser.add_argument("--split", default="val,test",
                        help="comma-separated splits to review: train, val, test (default val,test; training "
                             "photos are marked seen in training)")
    parser.add_argument("--top", type=int, default=REVIEW_TOP,
                        help=f"how many photos to list and draw (default {REVIEW_TOP})")
    parser.add_argument("--checkpoint", default="best.pt", help="which of the run's checkpoints (default best.pt)")
    parser.add_argument("--out", type=Path,
                        help="folder for review.csv (every photo reviewed, ranked) and label_review.jpg (the "
                             "gallery); default: the gallery as RUN/figures/label_review.jpg, the table printed only")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing review.csv and gallery")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_review(args: argparse.Namespace) -> int:
    from localizer.engine.run import Run
    from localizer.errors import DataError
    from localizer.engine.review import review_run
    from localizer.files import check_outputs, write_csv
    from localizer.report.confidence import REVIEW_COLUMNS, REVIEW_FIGURE, plot_review

    splits = tuple(s.strip() for s in args.split.split(",") if s.strip())
    if not splits or set(splits) - {"train", "val", "test"} or args.top < 1:
        raise DataError("bad-argument", f"--split takes train, val and test, comma-separated (got {args.split!r}) "
                                        f"and --top a whole number >= 1 (got {args.top})")
    run = Run.open(args.run)
    out = [args.out / "review.csv", args.out / REVIEW_FIGURE] if args.out else [run.folder / "figures" / REVIEW_FIGURE]
    inputs = [run.folder / name for name in ("config.json", "manifest.csv", "checkpoints")] + [run.config.data]
    check_outputs([("--out", path) for path in out], inputs=inputs, overwrite=args.overwrite)  # before the work
    table = review_run(run, splits, args.checkpoint, progress=not args.quiet)
    if args.out:
        write_csv(table.rename_axis("rank").reset_index(), out[0], replace=args.overwrite)
    plot_review(table, args.top, path=out[-1], replace=args.overwrite)  # files first, then print
    print(f"{len(table)} photos of the {', '.join(splits)} split{'s' * (len(splits) > 1)}, ranked by confidence x (1 - "
          f"IoU) (a confident prediction that misses its label first); the first {min(args.top, len(table))}:")
    print(table[REVIEW_COLUMNS].head(args.top).round(3).to_string())
    print(f"{'review: ' + str(out[0]) + ', gallery: ' if args.out else 'gallery: '}{out[-1]}")
    return 0
