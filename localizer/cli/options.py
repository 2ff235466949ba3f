"""Options that several commands share: how a dataset folder is read, the recipe of a run, the
checkpoint of ``evaluate`` and ``predict``; and ``-p NAME=VALUE`` parsed into recipe values."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from localizer.data.readers import FORMATS, OXFORD_BOXES
from localizer.errors import ConfigError
from localizer.engine.profile_choice import AUTO_PROFILE, SMALL_DATA_TRAIN
from localizer.recipe import PROFILES


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """The positional dataset folder and how it is read (:func:`add_format_args`)."""
    parser.add_argument("data", help="dataset folder")
    add_format_args(parser)


def add_format_args(parser: argparse.ArgumentParser) -> None:
    """How a dataset folder is read: ``--format``, ``--oxford-box`` and ``--classes``."""
    parser.add_argument("--format", default="auto", choices=("auto",) + FORMATS,
                        help="dataset format (default: auto, from the files found)")
    parser.add_argument("--oxford-box", default="animal", choices=OXFORD_BOXES,
                        help="oxford-pets: the whole-animal box from the trimap (default), or the XML head box")
    parser.add_argument("--classes", help="keep only boxes of these classes: VOC or COCO names, YOLO ids "
                                          "(comma-separated), or 'animals' (the VOC and COCO animal classes)")


def add_recipe_args(parser: argparse.ArgumentParser, profile: str, what: str, copies: str = "") -> None:
    """``--profile``, ``-p NAME=VALUE`` (a recipe field; see :class:`localizer.recipe.TrainConfig`)
    and ``--resume`` / ``--overwrite``; with ``copies`` (the options of the copies a command makes
    besides the run, e.g. ``--figures and --publish``), ``--overwrite`` also replaces those, and goes
    with ``--resume`` too (the run goes on, its copies are replaced)."""
    parser.add_argument("--profile", default=profile, choices=[*sorted(PROFILES), AUTO_PROFILE],
                        help=f"named recipe to start from (default {profile}); {AUTO_PROFILE}: small below "
                             f"{SMALL_DATA_TRAIN} training photos, else quick")
    parser.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                        help="recipe value (JSON), e.g. -p epochs=10 -p backbone=efficientnet_lite0 -p weights=null")
    again = parser.add_mutually_exclusive_group() if not copies else parser
    again.add_argument("--resume", action="store_true", help=f"continue {what}, with the recipe it was started with")
    also = f"; replace the files already in {copies} (with --resume: only those)" if copies else ""
    again.add_argument("--overwrite", action="store_true",
                       help=f"start afresh over {what} (only a localizer run){also}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_inference_args(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint``, ``--tta`` / ``--no-tta``, ``--device`` and ``--quiet`` (``evaluate``, ``predict``)."""
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="a run's checkpoint, e.g. runs/RUN/checkpoints/best.pt (it carries its recipe); "
                             "predict also takes a model exported with export (best.onnx, run with onnxruntime)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="horizontal-flip test-time augmentation: the box and the box predicted on the "
                             "mirrored photo, mirrored back, are averaged where they agree (IoU > 0.5), else the "
                             "first is kept (default: as the run's recipe, its tta)")
    parser.add_argument("--device", default="auto",
                        help="torch device, e.g. cpu or cuda:0 (default: auto: cuda, else mps, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_overrides(pairs: list[str] | None) -> dict:
    """``NAME=VALUE`` strings -> dict, values parsed as JSON when possible (``lr=3e-4``, ``weights=null``).

    Raises:
        ConfigError: a string without ``=``.
    """
    values = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"expected NAME=VALUE, got {pair!r}")
        try:
            values[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            values[name.strip()] = value
    return values
