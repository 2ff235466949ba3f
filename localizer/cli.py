"""Command line: ``python -m localizer {check-data,train,evaluate,predict,run} ...``.

Every command prints a clear one-line error (no traceback wall) for bad input and returns a
non-zero exit code: 2 for unusable data or arguments, 1 for other failures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .readers import FORMATS, OXFORD_BOXES, DataFormatError


def _add_data_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("data", nargs=None if required else "?", help="dataset folder")
    parser.add_argument("--format", default="auto", choices=("auto",) + FORMATS, help="dataset format (default: auto)")
    parser.add_argument("--oxford-box", default="animal", choices=OXFORD_BOXES,
                        help="oxford-pets: whole-animal box from the trimap, or the XML head box")


def cmd_check_data(args: argparse.Namespace) -> int:
    from .validation import scan_dataset

    result = scan_dataset(args.data, fmt=args.format, oxford_box=args.oxford_box,
                          progress=not args.quiet)
    print(result.summary())
    if args.report:
        print(f"report:  {result.write_report(args.report)}")
    return 0 if len(result.table) else 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localizer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check-data", help="validate a dataset folder and report skipped files")
    _add_data_args(check)
    check.add_argument("--report", type=Path, help="write file,status,reason CSV here")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=cmd_check_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, DataFormatError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
