"""A run folder: one training run's recipe, split, history, checkpoints and results.

Notebook 02 creates it (:meth:`Run.create`: scan, split, ``manifest.csv``, ``config.json``), notebook
03 trains in it, notebook 04 evaluates it, and ``evaluate``, ``predict`` and ``train --resume`` open
it again (:meth:`Run.open`, :func:`load_model`). This module is the one place that knows the layout:

=============================  ==================================================================
``config.json``                the recipe (:class:`localizer.recipe.TrainConfig`)
``manifest.csv``               usable photos, primary box, dHash, near-duplicate group, split
``data_report.csv``            every photo found, ``ok`` or ``skipped`` with the reason
``history.csv``                one row per epoch (:data:`localizer.engine.training.HISTORY_COLUMNS`)
``checkpoints/last.pt``        after every epoch: weights, optimizer, scheduler, history
``checkpoints/best.pt``        the weights with the best validation IoU (no optimizer state)
``metrics*.json``, ``*.csv``   test metrics and per-image IoUs (notebook 04, ``evaluate``)
``notebooks/``, ``figures/``   the executed notebooks and their figures (``run``)
=============================  ==================================================================

Crash safety: ``last.pt`` is written first and records the best epoch and score; ``best.pt``
follows. A kill between the two leaves a ``last.pt`` whose best epoch is its own and an older
``best.pt``: :func:`reconcile_checkpoints` (on resume and when ``best.pt`` is loaded) rewrites
``best.pt`` from ``last.pt``'s weights, which are that best epoch's. Checkpoints hold only tensors,
numbers, strings, lists and dicts and are read with ``torch.load(weights_only=True)``, which cannot
run code.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from localizer.errors import ConfigError, DataError
from localizer.files import atomic_save, write_csv, write_json
from localizer.model.heads import ALL_BOXES_HEADS
from localizer.model.models import build_model
from localizer.engine.numerics import Numerics, default_numerics, native_bf16, resolve_device
from localizer.recipe import RUNTIME_FIELDS, TrainConfig, recipe_values, same_recipe
from localizer.data.split import NotEnoughDataError, assign_split, load_manifest, save_manifest

CONFIG, MANIFEST, DATA_REPORT, HISTORY = "config.json", "manifest.csv", "data_report.csv", "history.csv"
CHECKPOINTS, LAST, BEST = "checkpoints", "last.pt", "best.pt"

#: What a run folder holds (files, folders and patterns): anything else in a folder marks it as
#: not a localizer run, which ``--overwrite`` never deletes.
RUN_ENTRIES = ("notebooks", "figures", CHECKPOINTS, CONFIG, MANIFEST, DATA_REPORT, HISTORY, "metrics.json",
               "per_image_test.csv", "metrics_*.json", "metrics_*.csv", "*.tmp")

#: Entries every localizer checkpoint holds (``last.pt`` also ``optimizer`` and ``scheduler``).
CHECKPOINT_KEYS = ("model", "config", "epoch", "history", "input_mean", "input_std")


class CheckpointError(DataError):
    """A file that is not a localizer checkpoint (foreign, malformed, or holding objects other than
    tensors, numbers, strings, lists and dicts, which ``weights_only`` loading refuses)."""


# ------------------------------------------------------------------------------------- run folder
def make_manifest(config: TrainConfig, progress: bool = True):
    """Scan ``config.data``, take the seeded ``subset`` if any, and split it.

    Returns:
        ``(manifest, scan)``: the split table (see :func:`localizer.data.split.assign_split`) and the
        :class:`localizer.data.validation.ScanResult`. The same config gives the same manifest anywhere.

    Raises:
        localizer.data.split.NotEnoughDataError: too few usable photos for the split (the message names
            the data folder, the number of usable photos and how many the split needs).
    """
    from localizer.data.validation import scan_dataset

    scan = scan_dataset(config.data, fmt=config.format, oxford_box=config.oxford_box, classes=config.classes,
                        progress=progress, all_boxes=config.head in ALL_BOXES_HEADS)
    table = scan.table
    if config.subset and config.subset < len(table):
        table = table.sort_values("file").sample(n=config.subset, random_state=config.seed)
    try:
        return assign_split(table, seed=config.seed, fractions=config.fractions), scan
    except NotEnoughDataError as exc:
        raise NotEnoughDataError(exc.reason, exc.detail, config.data) from None


def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` (not recursive) that are not part of a localizer run (:data:`RUN_ENTRIES`),
    sorted; with files outside ``notebooks/``, ``figures/`` and ``checkpoints/`` of the run's own
    kinds checked too (``.ipynb``, ``.png`` / ``.jpg``, ``.pt``). Empty for a run folder."""
    kinds = {"notebooks": (".ipynb",), "figures": (".png", ".jpg"), CHECKPOINTS: (".pt",)}
    foreign = []
    for entry in sorted(Path(folder).iterdir()):
        if not any(fnmatch.fnmatch(entry.name, pattern) for pattern in RUN_ENTRIES):
            foreign.append(entry.name)
        elif entry.name in kinds:
            if not entry.is_dir():
                foreign.append(entry.name)
                continue
            suffixes = kinds[entry.name]
            foreign += [f"{entry.name}/{p.relative_to(entry).as_posix()}" for p in sorted(entry.rglob("*"))
                        if not (p.is_file() and (p.suffix in suffixes or p.name.endswith(tuple(x + ".tmp" for x in suffixes))))]
    return foreign


@dataclass
class Run:
    """A run folder and its recipe. Make one with :meth:`create` or :meth:`open`.

    Attributes:
        folder: the run folder.
        config: the recipe (``config.json``), with the runtime fields of this session.
    """

    folder: Path
    config: TrainConfig

    @classmethod
    def create(cls, config: TrainConfig, folder: Path | str, overwrite: bool = False, progress: bool = True) -> Run:
        """Scan ``config.data``, split it and write ``manifest.csv``, ``data_report.csv`` and
        ``config.json`` (with the data folder as an absolute path) into ``folder``. A run folder
        with the same split keeps its manifest.

        Raises:
            FileExistsError: ``folder`` holds a different split, or checkpoints of another recipe,
                and ``overwrite`` is False (a run's files are never silently replaced).
            localizer.data.split.NotEnoughDataError: too few usable photos for the split.
        """
        folder = Path(folder)
        # absolute: the same folder from any working dir (not resolved: a data folder behind a link keeps its name)
        config = replace(config, data=os.path.abspath(config.data))
        saved = folder / CONFIG
        if (folder / CHECKPOINTS / LAST).exists() and saved.exists() and not overwrite:
            if not same_recipe(TrainConfig.from_dict(json.loads(saved.read_text())), config):
                raise FileExistsError(f"{folder} holds a run trained with another config; choose another run "
                                      "folder or start afresh over it with --overwrite (overwrite=True in Python)")
        manifest, scan = make_manifest(config, progress)
        save_manifest(manifest, folder / MANIFEST, overwrite=overwrite)
        scan.write_report(folder / DATA_REPORT)
        write_json(saved, asdict(config))
        return cls(folder, config)

    @classmethod
    def open(cls, folder: Path | str, **changes) -> Run:
        """The run in ``folder``, with ``changes`` to its runtime fields (``device``, ``workers``, ...).

        Raises:
            FileNotFoundError: ``folder`` holds no ``config.json`` (not a run folder).
            localizer.errors.ConfigError: ``changes`` to the recipe itself (a run goes on with the
                recipe it was started with).
        """
        folder = Path(folder)
        if not (folder / CONFIG).is_file():
            raise FileNotFoundError(f"{folder} is not a run folder: it has no {CONFIG}")
        config = TrainConfig.from_dict(json.loads((folder / CONFIG).read_text()))
        recipe = {k: v for k, v in changes.items() if k not in RUNTIME_FIELDS}
        given, saved = recipe_values(replace(config, **recipe), list(recipe)), recipe_values(config, list(recipe))
        changed = [f"{n}={given[n]!r} (the run has {saved[n]!r})" for n in recipe if given[n] != saved[n]]
        if changed:
            raise ConfigError(f"{folder} goes on with the recipe it was started with; it cannot change "
                              f"{', '.join(changed)}. Train another recipe in another run folder.")
        return cls(folder, replace(config, **{k: v for k, v in changes.items() if k in RUNTIME_FIELDS}))

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
            if last.exists() and not overwrite:
                raise FileExistsError(
                    f"{self.folder} already holds a training run ({last}); continue it with --resume, choose "
                    "another run folder, or start afresh over it with --overwrite (resume=True / overwrite=True "
                    "in Python)")
            return None
        if not last.exists():
            raise FileNotFoundError(f"cannot resume: {last} does not exist")
        reconcile_checkpoints(self.checkpoints)
        checkpoint = load_checkpoint(last)
        if not same_recipe(TrainConfig.from_dict(checkpoint["config"]), self.config):
            raise FileExistsError(f"{self.folder} holds a run with another config than its {CONFIG}")
        return checkpoint

    def save_epoch(self, payload: dict, improved: bool, history: pd.DataFrame) -> None:
        """Write ``last.pt`` (``payload``), then ``best.pt`` when the epoch ``improved``, then
        ``history.csv``; each atomically, in this order (see the module docstring)."""
        atomic_save(payload, self.checkpoints / LAST)
        if improved:
            atomic_save(best_payload(payload), self.checkpoints / BEST)
        write_csv(history, self.folder / HISTORY)

    def load_model(self, which: str = BEST, device: str | torch.device = "cpu"):
        """:func:`load_model` of this run's ``best.pt`` (or ``last.pt``)."""
        return load_model(self.checkpoints / which, device)


# ------------------------------------------------------------------------------------ checkpoints
def best_payload(checkpoint: dict) -> dict:
    """What ``best.pt`` holds of a ``last.pt`` payload: the weights that were validated (the EMA's
    when the recipe keeps one) as ``model``, and no optimizer, scheduler or second copy of the
    weights (best.pt is for evaluation and prediction)."""
    best = {k: v for k, v in checkpoint.items() if k not in ("optimizer", "scheduler", "ema")}
    if "ema" in checkpoint:  # AveragedModel's state: its module's weights under "module.", and n_averaged
        best["model"] = ema_weights(checkpoint["ema"])
    return best


def ema_weights(ema_state: dict) -> dict:
    """The averaged model's own state dict out of an :class:`~torch.optim.swa_utils.AveragedModel` state."""
    return {k.removeprefix("module."): v for k, v in ema_state.items() if k.startswith("module.")}


def load_checkpoint(path: Path | str) -> dict:
    """Load a localizer checkpoint with ``torch.load(weights_only=True)``: tensors, numbers, strings,
    lists and dicts only, so a crafted file cannot run code while it is read.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a file that is not a localizer checkpoint (foreign, malformed, or holding
            other objects); one line that names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and weights-only errors alike: not ours
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError("not-a-checkpoint", f"cannot be loaded safely as a localizer checkpoint "
                              f"({type(exc).__name__}: {first_line})", path) from None
    missing = [k for k in CHECKPOINT_KEYS if k not in checkpoint] if isinstance(checkpoint, dict) else CHECKPOINT_KEYS
    if missing:
        raise CheckpointError("not-a-checkpoint", f"not a localizer checkpoint (no {', '.join(missing)})", path)
    return checkpoint


def reconcile_checkpoints(folder: Path | str) -> bool:
    """Make ``best.pt`` in ``folder`` agree with ``last.pt`` after a kill between their writes.

    When ``last.pt``'s best epoch is its own epoch but ``best.pt`` is missing or from another
    epoch, the kill came in between, and ``last.pt``'s weights are the best ones: ``best.pt`` is
    rewritten from them. Returns True when it did so.

    Raises:
        CheckpointError: ``last.pt`` or ``best.pt`` is not a localizer checkpoint.
    """
    last_path, best_path = Path(folder) / LAST, Path(folder) / BEST
    if not last_path.is_file():
        return False
    last = load_checkpoint(last_path)
    if last.get("best_epoch") != last["epoch"]:
        return False
    if best_path.is_file() and load_checkpoint(best_path)["epoch"] == last["epoch"]:
        return False
    atomic_save(best_payload(last), best_path)
    return True


def inference_numerics(checkpoint: dict, device: torch.device) -> Numerics:
    """Evaluation and prediction compute as the training did (its validation scores were measured
    so): bf16 when the checkpoint was trained in bf16 and ``device`` has native bf16, else float32."""
    used = checkpoint.get("precision_used", "fp32")
    return default_numerics(device, "bf16" if used == "bf16" and native_bf16(device) else "fp32")


def load_model(checkpoint_path: Path | str, device: str | torch.device = "cpu"):
    """Load a trained model from a checkpoint (safely: see :func:`load_checkpoint`).

    A ``best.pt`` beside a ``last.pt`` is first made consistent with it (:func:`reconcile_checkpoints`).

    Returns:
        ``(model, info)``: the model in eval mode on ``device``, and a dict with ``config``
        (:class:`~localizer.recipe.TrainConfig`), ``input_mean``, ``input_std``, ``epoch``,
        ``history``, ``train_mean_box`` (the mean normalized xyxy training box, or None in older
        checkpoints) and ``numerics`` (:func:`inference_numerics`: pass it to ``predict_batch``).

    Raises:
        FileNotFoundError: no such checkpoint.
        CheckpointError: the file is not a localizer checkpoint (the message names it).
    """
    path = Path(checkpoint_path)
    if path.name == BEST:
        reconcile_checkpoints(path.parent)
    checkpoint = load_checkpoint(path)
    try:
        config = TrainConfig.from_dict(checkpoint["config"])
        model = build_model(config.backbone, weights=None, dropout=config.dropout, head=config.head,
                            image_size=config.image_size, hypotheses=config.hypotheses)
        model.load_state_dict(checkpoint["model"])
    except (ConfigError, KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError("not-a-checkpoint", f"its recipe or weights do not make a localizer model: {exc}",
                              path) from None
    device = resolve_device(device) if isinstance(device, str) else device
    numerics = inference_numerics(checkpoint, device)
    numerics.place_model(model).eval()
    info = {"config": config, "input_mean": tuple(checkpoint["input_mean"]),
            "input_std": tuple(checkpoint["input_std"]), "epoch": checkpoint["epoch"],
            "history": checkpoint["history"], "train_mean_box": checkpoint.get("train_mean_box"),
            "numerics": numerics}
    return model, info
