"""A run folder: one training run's recipe, split, history, checkpoints and results.

Notebook 02 creates it (:meth:`Run.create`: split, ``manifest.csv``, ``config.json``), notebook
03 trains in it, notebook 04 evaluates it, and ``evaluate``, ``predict`` and ``train --resume`` open
it again (:meth:`Run.open`, :func:`localizer.engine.checkpoints.load_model`). This module is the one
place that knows the layout:

=============================  ==================================================================
``config.json``                the recipe (:class:`localizer.recipe.TrainConfig`) and its profile
``manifest.csv``               usable photos, primary box, dHash, near-duplicate group, split
``scan.json``, ``scan.csv``    the scan of the data the split was made of (:mod:`localizer.data.scans`)
``data_report.csv``            every photo found, ``ok`` or ``skipped`` with the reason
``history.csv``                one row per epoch (:data:`localizer.engine.training.HISTORY_COLUMNS`)
``checkpoints/last.pt``        after every epoch: weights, optimizer, scheduler, history
``checkpoints/best.pt``        the kept epoch's weights: the best validation IoU, or the last (``keep``)
``metrics*.json``, ``*.csv``   test metrics and per-image IoUs (notebook 04, ``evaluate``)
``notebooks/``, ``figures/``   the executed notebooks and their figures (``run``)
=============================  ==================================================================

One guard decides whether a run may be written into a folder (:func:`check_run_folder`): a folder
:meth:`Run.create` made holds the marker file :data:`MARKER` with its format
(:data:`localizer.engine.checkpoints.FORMAT_VERSION`; a run folder of another format is refused); a
folder with anything else (:func:`foreign_entries`) is never written into or replaced. Checkpoints:
:mod:`localizer.engine.checkpoints` (crash safety, safe loading).
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from localizer.data.scans import DATA_REPORT, SCAN_INFO, SCAN_TABLE, save_scan, scan_for
from localizer.data.validation import ScanResult
from localizer.errors import ConfigError
from localizer.files import PROBE_PREFIX, OutputError, atomic_save, writable_folder, write_csv, write_json
from localizer.engine.checkpoints import (BEST, FORMAT_VERSION, LAST, best_payload, check_format, load_checkpoint,
                                          load_model)
from localizer.engine.manifests import make_manifest
from localizer.recipe import RUNTIME_FIELDS, TrainConfig, recipe_values, same_recipe
from localizer.data.split import load_manifest, save_manifest

CONFIG, MANIFEST, HISTORY, CHECKPOINTS = "config.json", "manifest.csv", "history.csv", "checkpoints"
#: The file :meth:`Run.create` writes into every run folder: what marks a folder as a localizer run.
MARKER = ".localizer-run"

#: Entries of a run folder that may come before :meth:`Run.create` writes the :data:`MARKER`: the notebooks of
#: ``run``, and notebook 01's scan and figures.
BEFORE_RUN = ("notebooks", "figures", SCAN_INFO, SCAN_TABLE, DATA_REPORT)
#: What a run folder holds (files, folders and patterns): anything else in a folder marks it as
#: not a localizer run, which ``--overwrite`` never deletes.
RUN_ENTRIES = (MARKER, *BEFORE_RUN, CHECKPOINTS, CONFIG, MANIFEST, HISTORY, "metrics.json", "per_image_test.csv",
               "metrics_*.json", "metrics_*.csv", "*.tmp")


# ------------------------------------------------------------------------------------- run folder
def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` (not recursive) that are not part of a localizer run (:data:`RUN_ENTRIES`),
    sorted; with files outside ``notebooks/``, ``figures/`` and ``checkpoints/`` of the run's own
    kinds checked too (``.ipynb``, ``.png`` / ``.jpg``, ``.pt``). Empty for a run folder. A folder
    without the :data:`MARKER` counts as a run folder only while it holds no more than :data:`BEFORE_RUN`
    (what the ``run`` command and notebook 01 write before notebook 02 creates the run). The probe files of
    :func:`localizer.files.writable_folder` (:data:`~localizer.files.PROBE_PREFIX`) are not entries: several
    processes open one run folder at once (torchrun)."""
    kinds = {"notebooks": (".ipynb",), "figures": (".png", ".jpg"), CHECKPOINTS: (".pt",)}
    marked = (Path(folder) / MARKER).is_file()
    foreign = []
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith(PROBE_PREFIX):  # another process's write test, there for a moment
            continue
        if not any(fnmatch.fnmatch(entry.name, pattern) for pattern in RUN_ENTRIES) or not (
                marked or entry.name in BEFORE_RUN):
            foreign.append(entry.name)
        elif entry.name in kinds:
            if not entry.is_dir():
                foreign.append(entry.name)
                continue
            suffixes = kinds[entry.name]
            temporary = tuple(x + ".tmp" for x in suffixes)
            foreign += [f"{entry.name}/{p.relative_to(entry).as_posix()}" for p in sorted(entry.rglob("*"))
                        if not (p.is_file() and (p.suffix in suffixes or p.name.endswith(temporary)))]
    return foreign


def check_run_folder(folder: Path | str, config: TrainConfig | None = None, overwrite: bool = False) -> None:
    """The one check of whether a run may be written into ``folder`` (:meth:`Run.create`, :meth:`Run.resume_point`).

    A folder that holds a trained run (``checkpoints/last.pt``) goes on only with the same recipe as
    ``config`` (None: with no recipe, i.e. a fresh start); anything else needs ``overwrite``. A folder
    to write afresh must be new, empty or a run folder, ``overwrite`` or not: a folder with entries of
    its own (:func:`foreign_entries`) is never written into.

    Raises:
        FileExistsError: naming the folder and the reason (and what to do instead).
        localizer.files.OutputError: ``read-only-output``: the folder cannot be written.
        localizer.engine.checkpoints.CheckpointError: a ``last.pt`` that is not a localizer checkpoint.
        localizer.engine.checkpoints.FormatError: a run folder or ``last.pt`` of another format, unless
            ``overwrite``.
    """
    folder = Path(folder)
    if writable_folder(folder / CONFIG) is None:
        raise OutputError("read-only-output", "the run folder cannot be written (read-only, or not a folder); "
                                              "choose another run folder", folder)
    last = folder / CHECKPOINTS / LAST
    if (folder / MARKER).is_file() and not overwrite:
        check_run_format(folder)
    if last.is_file() and not overwrite:
        trained = TrainConfig.from_dict(load_checkpoint(last)["config"])
        if config is not None and same_recipe(trained, config):
            return
        what = ("a training run" if config is None else "a run trained with another config")
        raise FileExistsError(
            f"{folder} already holds {what} ({last}); continue it with --resume, choose another run folder, "
            "or start afresh over it with --overwrite (resume=True / overwrite=True in Python)")
    foreign = foreign_entries(folder) if folder.is_dir() else []
    if foreign:
        raise FileExistsError(f"{folder} is not a localizer run folder (it holds {', '.join(foreign[:5])}"
                              f"{', ...' if len(foreign) > 5 else ''}, and no {MARKER} from Run.create "
                              "vouches for them); choose another run folder")


def check_run_format(folder: Path | str) -> None:
    """Refuse a run folder whose :data:`MARKER` is missing or records another format than
    :data:`localizer.engine.checkpoints.FORMAT_VERSION`.

    Raises:
        localizer.engine.checkpoints.FormatError: naming the marker file and both formats.
    """
    marker = Path(folder) / MARKER
    try:
        version = json.loads(marker.read_text()).get("format_version")
    except (OSError, ValueError, AttributeError):  # no marker, or the text one of an older localizer
        version = None
    check_format(version, marker)


@dataclass
class Run:
    """A run folder and its recipe. Make one with :meth:`create` or :meth:`open`.

    Attributes:
        folder: the run folder.
        config: the recipe (``config.json``), with the runtime fields of this session.
        profile: the profile the recipe was made from (:data:`localizer.recipe.PROFILES`; None when not given to
            :meth:`create`), recorded beside the recipe in ``config.json``.
    """

    folder: Path
    config: TrainConfig
    profile: str | None = None

    @classmethod
    def create(cls, config: TrainConfig, folder: Path | str, overwrite: bool = False, progress: bool = True,
               scan: ScanResult | None = None, profile: str | None = None) -> Run:
        """Split ``scan`` (default: the scan saved in ``folder`` when it still fits, else a new scan of
        ``config.data``: :func:`localizer.data.scans.scan_for`) and write ``manifest.csv``, the scan
        (:func:`localizer.data.scans.save_scan`) and ``config.json`` (with the data folder as an absolute path,
        and ``profile``) into ``folder``. A run folder with the same split keeps its manifest.

        Raises:
            FileExistsError: ``folder`` holds a different split, or checkpoints of another recipe,
                and ``overwrite`` is False (a run's files are never silently replaced), or it is not a
                run folder (:func:`check_run_folder`).
            localizer.errors.ConfigError: ``scan`` is not of the recipe's data (:func:`make_manifest`).
            localizer.data.split.NotEnoughDataError: too few usable photos for the split.
        """
        folder = Path(folder)
        # absolute: the same folder from any working dir (not resolved: a data folder behind a link keeps its name)
        config = replace(config, data=os.path.abspath(config.data))
        check_run_folder(folder, config, overwrite)
        if scan is None:
            scan = scan_for(config.data, config.format, config.oxford_box, config.classes, folder, progress)
        manifest = make_manifest(config, scan)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / MARKER, {"localizer_run": "localizer.engine.run.Run.create",
                                     "format_version": FORMAT_VERSION}, replace=True)
        save_manifest(manifest, folder / MANIFEST, overwrite=overwrite)
        save_scan(scan, folder)
        write_json(folder / CONFIG, {"profile": profile, **asdict(config)}, replace=True)
        return cls(folder, config, profile)

    @classmethod
    def open(cls, folder: Path | str, **changes) -> Run:
        """The run in ``folder``, with ``changes`` to its runtime fields (``device``, ``workers``, ...).

        Raises:
            FileNotFoundError: ``folder`` holds no ``config.json`` (not a run folder).
            localizer.engine.checkpoints.FormatError: a run folder of another format (:func:`check_run_format`).
            localizer.errors.ConfigError: ``changes`` to the recipe itself (a run goes on with its recipe).
        """
        folder = Path(folder)
        if not (folder / CONFIG).is_file():
            raise FileNotFoundError(f"{folder} is not a run folder: it has no {CONFIG}")
        check_run_format(folder)
        values = json.loads((folder / CONFIG).read_text())
        profile = values.pop("profile", None)
        config = TrainConfig.from_dict(values)
        recipe = {k: v for k, v in changes.items() if k not in RUNTIME_FIELDS}
        given, saved = recipe_values(replace(config, **recipe), list(recipe)), recipe_values(config, list(recipe))
        changed = [f"{n}={given[n]!r} (the run has {saved[n]!r})" for n in recipe if given[n] != saved[n]]
        if changed:
            unused = (f" It trains steps={config.steps} updates: epochs is unused."
                      if config.steps and given.get("epochs", config.epochs) != config.epochs else "")
            raise ConfigError(f"{folder} goes on with the recipe it was started with; it cannot change "
                              f"{', '.join(changed)}.{unused} Train another recipe in another run folder.")
        return cls(folder, replace(config, **{k: v for k, v in changes.items() if k in RUNTIME_FIELDS}), profile)

    @classmethod
    def of_checkpoint(cls, checkpoint: Path | str) -> Run | None:
        """The run whose ``checkpoints/`` folder holds ``checkpoint``, or None for a checkpoint
        outside a run folder (no ``config.json`` and ``manifest.csv`` beside its folder)."""
        folder = Path(checkpoint).resolve().parent.parent
        return cls.open(folder) if (folder / CONFIG).is_file() and (folder / MANIFEST).is_file() else None

    @property
    def manifest(self) -> pd.DataFrame:
        """The split (``manifest.csv``): one row per usable photo."""
        return load_manifest(self.folder / MANIFEST)

    @property
    def checkpoints(self) -> Path:
        return self.folder / CHECKPOINTS

    def resume_point(self, resume: bool | str = False, overwrite: bool = False) -> dict | None:
        """The ``last.pt`` to continue from, or None to start afresh.

        Args:
            resume: True: continue from ``last.pt``; ``"auto"``: continue when it exists (a finished
                run then trains nothing), start afresh when there is none; False: start afresh.
            overwrite: allow starting afresh over a folder that already holds checkpoints.

        Raises:
            FileExistsError: checkpoints exist and neither ``resume`` nor ``overwrite``, or they
                hold another recipe than ``config.json``.
            FileNotFoundError: ``resume=True`` without ``last.pt``.
        """
        last = self.checkpoints / LAST
        if resume == "auto":
            resume = last.exists() and not overwrite
        if not resume:
            check_run_folder(self.folder, None, overwrite)
            return None
        if not last.exists():
            raise FileNotFoundError(f"cannot resume: {last} does not exist")
        check_run_folder(self.folder, self.config)
        return load_checkpoint(last)

    def save_epoch(self, payload: dict, kept: bool, history: pd.DataFrame) -> None:
        """Write ``best.pt`` when the epoch is the one the recipe keeps (``kept``), then ``history.csv``, then
        ``last.pt`` (``payload``); each atomically. ``last.pt`` comes last: until it is written, the run resumes
        from the epoch before and writes the others again (:mod:`localizer.engine.checkpoints`)."""
        if kept:
            atomic_save(best_payload(payload), self.checkpoints / BEST, replace=True)
        write_csv(history, self.folder / HISTORY, replace=True)
        atomic_save(payload, self.checkpoints / LAST, replace=True)

    def load_model(self, which: str = BEST, device: str | torch.device = "cpu"):
        """:func:`localizer.engine.checkpoints.load_model` of this run's ``best.pt`` (or ``last.pt``)."""
        return load_model(self.checkpoints / which, device)
