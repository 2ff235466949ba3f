"""Command line: ``python -m localizer {check-data,train,evaluate,predict,export,synthetic,run,compare,
several-animals,review} ...``.

Every command prints a clear one-line error (no traceback wall) for bad input and returns a
non-zero exit code: 2 for unusable data or arguments (:class:`localizer.errors.DataError`, a missing
file, an output that exists), 1 for a failed notebook, a diverged training or missing weights. Any
other exception is a bug: its traceback is shown. Output piped into a reader that stops early
(``| head``) ends the command quietly with :data:`EXIT_BROKEN_PIPE`; commands write their files
before they print, so that a closed pipe costs no file.

The commands live by job: :mod:`~localizer.cli.training` (``check-data``, ``synthetic``, ``train``,
``run``), :mod:`~localizer.cli.scoring` (``evaluate``, ``predict``), :mod:`~localizer.cli.exporting` (``export``),
:mod:`~localizer.cli.analysis`
(``compare``, ``several-animals``, ``review``); their shared options in :mod:`~localizer.cli.options`.
"""

from __future__ import annotations

import argparse
import os
import sys

from localizer.cli import analysis, exporting, scoring, training
from localizer.cli.analysis import cmd_compare, cmd_review, cmd_several_animals
from localizer.cli.exporting import cmd_export
from localizer.cli.scoring import PIXEL_DECIMALS, _tta, cmd_evaluate, cmd_predict  # noqa: F401 (the CLI's names)
from localizer.cli.training import cmd_check_data, cmd_run, cmd_synthetic, cmd_train
from localizer.data.download import DataUnavailableError
from localizer.engine.training import TrainingDiverged
from localizer.errors import DataError
from localizer.model.models import WeightsUnavailableError
from localizer.report.runner import NotebookFailed

#: Exit code when stdout is a pipe whose reader has gone (``| head``): 128 + SIGPIPE (13), what a
#: shell reports for a program that the closed pipe stopped.
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sub-parser's ``func`` is the ``cmd_*`` of this module's
    namespace at the time of the call (so that a test can replace one)."""
    parser = argparse.ArgumentParser(prog="python -m localizer", description="Single-object localization: check a "
                                     "dataset, train, evaluate, predict, run the notebooks, compare runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = (  # name, help, its arguments, what it runs
        ("check-data", "validate a dataset folder and report skipped files", training.add_check_data_args,
         cmd_check_data),
        ("train", "train a box regressor (the report's recipe by default)", training.add_train_args, cmd_train),
        ("evaluate", "metrics of a checkpoint beside the baselines", scoring.add_evaluate_args, cmd_evaluate),
        ("predict", "predict the box of new photos", scoring.add_predict_args, cmd_predict),
        ("export", "export a trained model to ONNX (checked against PyTorch) for onnxruntime and other runtimes",
         exporting.add_export_args, cmd_export),
        ("synthetic", "write the small synthetic test dataset (known boxes, several layouts)",
         training.add_synthetic_args, cmd_synthetic),
        ("run", "execute notebooks 01-04 with papermill into one run folder", training.add_run_args, cmd_run),
        ("compare", "whether two models differ on the same photos: McNemar's and Wilcoxon's paired tests",
         analysis.add_compare_args, cmd_compare),
        ("several-animals", "what a run's misses on the photos with several animals are",
         analysis.add_several_animals_args, cmd_several_animals),
        ("review", "the photos whose label most disagrees with a confident prediction, and their gallery",
         analysis.add_review_args, cmd_review),
    )
    for name, help_text, add_args, func in commands:
        command = sub.add_parser(name, help=help_text)
        add_args(command)
        command.set_defaults(func=func)
    return parser


def _silence_stdout() -> None:
    """Point stdout's file descriptor at :data:`os.devnull`, so that Python's flush at exit raises no
    second BrokenPipeError (the Python docs' recipe: :mod:`signal`, "Note on SIGPIPE"). A stdout
    without a file descriptor (in process, e.g. :class:`io.StringIO`) is left as it is."""
    try:
        descriptor = sys.stdout.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Python ignores SIGPIPE, so a write to a pipe whose reader has gone raises BrokenPipeError: that
    ends the command with :data:`EXIT_BROKEN_PIPE` and no traceback (stdout is flushed inside the
    ``try``, so that the error shows here rather than at exit; see :func:`_silence_stdout`).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader of stdout has gone: nothing left to tell it
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (DataError, FileNotFoundError, FileExistsError, DataUnavailableError) as exc:  # unusable data or arguments
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (NotebookFailed, TrainingDiverged, WeightsUnavailableError) as exc:  # failures with a clear cause
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
