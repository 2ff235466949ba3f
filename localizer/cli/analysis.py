"""The analysis commands: ``compare`` (two models on the same photos, paired tests) and
``several-animals`` (what a model's misses on photos with several animals are).

Their logic is :mod:`localizer.report.compare` and :mod:`localizer.report.several`; each ``cmd_*``
takes the parsed arguments and returns the exit code.
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
