"""Training: the course report's recipe by default, crash-safe and resumable.

Recipe (defaults of :class:`TrainConfig`): ResNet18 backbone, head Dropout(0.5) + Linear(512, 4),
Smooth L1 loss on normalized xyxy boxes, AdamW (lr 1e-3, weight decay 1e-4), batch 32,
ReduceLROnPlateau (factor 0.1, patience 3) on the validation loss, 256 x 256 inputs.

Per epoch the history records ``train_loss`` (mean of the epoch's batch losses), ``val_loss``
(after the epoch, model in eval mode), ``train_iou``/``val_iou`` (mean IoU), ``lr`` and
``seconds``. After every epoch ``checkpoints/last.pt`` is written atomically (temp file + rename),
and ``checkpoints/best.pt`` (model weights, config and history, no optimizer state) whenever the
validation IoU improves. :func:`fit` with ``resume=True`` continues a killed run from ``last.pt``
with the same split, optimizer and scheduler state, and the same batches: the shuffle order and the
augmentation of epoch ``e`` are seeded by ``(seed, e)`` alone, whether the run was interrupted or not.

Crash safety: ``last.pt`` is written first and records the best epoch and score; ``best.pt``
follows. A kill between the two leaves a ``last.pt`` whose best epoch is its own epoch and an older
``best.pt``: :func:`reconcile_checkpoints` (run on resume and when a checkpoint is loaded) then
rewrites ``best.pt`` from ``last.pt``'s weights, which are that best epoch's. Checkpoints hold only
tensors, numbers, strings, lists and dicts, and are loaded with ``torch.load(weights_only=True)``,
which cannot run code.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from .batch_augment import BatchAugment
from .cache import ImageCache
from .data import CachedBoxDataset, make_loader, normalized_targets
from .errors import ConfigError, DataError
from .files import atomic_save, write_csv, write_json
from .heads import HEADS
from .losses import LOSSES, box_loss
from .metrics import paired_iou
from .models import BACKBONES, build_model
from .numerics import PRECISIONS, Numerics, choose_numerics, default_numerics, native_bf16, resolve_device
from .readers import DataFormatError, parse_classes
from .split import DEFAULT_FRACTIONS, DEFAULT_SEED, NotEnoughDataError, assign_split, load_manifest, save_manifest
from .transforms import model_input

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "train_iou", "val_iou", "lr", "seconds"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class CheckpointError(DataError):
    """A file that is not a localizer checkpoint (foreign, malformed, or holding objects other than
    tensors, numbers, strings, lists and dicts, which ``weights_only`` loading refuses)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` and in each checkpoint).

    Attributes mirror the report's recipe by default. ``classes`` keeps only boxes of these classes
    (None: all; e.g. ``"animals"``, see :func:`localizer.readers.parse_classes`). ``head`` is the
    report's ``linear`` head or ``softargmax`` (:mod:`localizer.heads`). ``affine_p`` is the
    probability of the box-aware random scale + shift per training image
    (:class:`localizer.batch_augment.BatchAugment`; 0 in the report). ``ema`` > 0 keeps an
    exponential moving average of the weights (decay per step; :class:`torch.optim.swa_utils.AveragedModel`),
    which validation, ``best.pt`` and so evaluation and prediction use. ``warmup_epochs`` > 0
    (cosine schedule only) raises the learning rate linearly from a tenth over those epochs
    before the cosine decay (Goyal et al. 2017). ``schedule`` is ``plateau`` (the report's
    ReduceLROnPlateau on the validation loss) or ``cosine`` (cosine annealing from ``lr`` to 0 over
    ``epochs``, stepped once per epoch; Loshchilov & Hutter, SGDR, 2017). ``subset`` limits the number of images
    (seeded, before the split) for quick runs; ``workers`` is the number of DataLoader processes
    for the training set (``-1``: 1 on CPU, 4 on an accelerator); ``device`` is ``auto``, ``cpu``,
    ``cuda`` or ``mps``; ``precision`` is ``auto``, ``fp32`` or ``bf16`` (see :mod:`localizer.numerics`).

    Large batches (for a GPU): ``lr`` is the learning rate at the report's batch of 32
    (:data:`REFERENCE_BATCH`); ``lr_scaling`` scales it to ``batch_size`` (see
    :func:`effective_lr`): ``none`` (default), ``linear`` (x batch/32; Goyal et al., "Accurate,
    Large Minibatch SGD", 2017, the rule for SGD) or ``sqrt`` (x sqrt(batch/32); the rule for
    Adam-type optimizers such as AdamW, Malladi et al., "On the SDEs and Scaling Rules for Adaptive
    Gradient Algorithms", NeurIPS 2022). E.g. ``batch_size=256, lr_scaling="sqrt"`` trains with
    lr 2.83e-3.
    """

    data: str = "data/oxford-iiit-pet"
    format: str = "auto"
    oxford_box: str = "animal"
    classes: str | None = None
    image_size: int = 256
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    lr_scaling: str = "none"
    weight_decay: float = 1e-4
    backbone: str = "resnet18"
    weights: str | None = "imagenet"
    head: str = "linear"
    dropout: float = 0.5
    loss: str = "smooth_l1"
    schedule: str = "plateau"
    plateau_factor: float = 0.1
    plateau_patience: int = 3
    warmup_epochs: int = 0
    ema: float = 0.0
    affine_p: float = 0.0
    seed: int = DEFAULT_SEED
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    subset: int | None = None
    device: str = "auto"
    precision: str = "auto"
    workers: int = -1
    cache_dir: str | None = None

    def __post_init__(self):
        """Check every value's type and range at once, so a bad ``-p`` value fails before any work.

        Raises:
            localizer.errors.ConfigError: naming the field, its value and what it takes.
        """
        def bad(name: str, expected: str):
            raise ConfigError(f"{name}={getattr(self, name)!r}: expected {expected}")

        def whole(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        def number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN

        for name in ("image_size", "epochs", "batch_size"):
            if not whole(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "a whole number >= 1")
        for name in ("weight_decay", "plateau_factor"):
            if not number(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "a number >= 0")
        if not number(self.lr) or self.lr <= 0:
            bad("lr", "a number > 0")
        if not number(self.dropout) or not 0 <= self.dropout < 1:
            bad("dropout", "a number in [0, 1)")
        if not number(self.ema) or not 0 <= self.ema < 1:
            bad("ema", "a number in [0, 1): the EMA decay per step (0: no EMA)")
        if not number(self.affine_p) or not 0 <= self.affine_p <= 1:
            bad("affine_p", "a number in [0, 1]")
        if not whole(self.warmup_epochs) or not 0 <= self.warmup_epochs < self.epochs:
            bad("warmup_epochs", "a whole number >= 0 and below epochs")
        if self.warmup_epochs and self.schedule != "cosine":
            bad("warmup_epochs", "0 with schedule='plateau' (warm-up is for the cosine schedule)")
        if not whole(self.plateau_patience) or self.plateau_patience < 0:
            bad("plateau_patience", "a whole number >= 0")
        if self.subset is not None and (not whole(self.subset) or self.subset < 1):
            bad("subset", "null or a whole number >= 1")
        if not whole(self.seed):
            bad("seed", "a whole number")
        if not whole(self.workers) or self.workers < -1:
            bad("workers", "-1 (automatic) or a whole number >= 0")
        choices = {"backbone": BACKBONES, "loss": LOSSES, "schedule": SCHEDULES, "lr_scaling": LR_SCALINGS,
                   "oxford_box": ("animal", "head"), "precision": PRECISIONS, "head": HEADS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                bad(name, f"one of {allowed}")
        try:
            parse_classes(self.classes)
        except DataFormatError as exc:
            raise ConfigError(f"classes={self.classes!r}: {exc}") from None
        self.data = str(self.data)  # a pathlib.Path is welcome; config.json stores text
        self.cache_dir = None if self.cache_dir is None else str(self.cache_dir)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a dict, ignoring unknown keys; ``fractions`` may be a list."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in names}
        if "fractions" in values:
            values["fractions"] = tuple(values["fractions"])
        return cls(**values)


#: The batch size that ``TrainConfig.lr`` refers to (the course report's).
REFERENCE_BATCH = 32
LR_SCALINGS = ("none", "linear", "sqrt")


def effective_lr(config: TrainConfig) -> float:
    """The learning rate the optimizer starts with: ``config.lr`` scaled from :data:`REFERENCE_BATCH`
    to ``config.batch_size`` by ``config.lr_scaling`` (``none``: lr; ``linear``: lr x B/32;
    ``sqrt``: lr x sqrt(B/32); :class:`TrainConfig` accepts no other value)."""
    exponent = {"none": 0.0, "linear": 1.0, "sqrt": 0.5}[config.lr_scaling]
    return config.lr * (config.batch_size / REFERENCE_BATCH) ** exponent


#: Config fields that say where and how fast a run goes, not what it learns.
RUNTIME_FIELDS = ("device", "precision", "workers", "cache_dir")


def recipe_values(config: TrainConfig, names=None) -> dict:
    """The fields ``names`` of ``config`` (default: all but :data:`RUNTIME_FIELDS`) as a dict to
    compare configs by, with ``data`` as a resolved path (``data/x`` and ``./data/x`` are the same)."""
    values = asdict(config)
    names = [k for k in values if k not in RUNTIME_FIELDS] if names is None else names
    return {k: str(Path(values[k]).resolve()) if k == "data" else values[k] for k in names}


def same_recipe(a: TrainConfig, b: TrainConfig) -> bool:
    """True when two configs train the same model on the same data: equal but for
    :data:`RUNTIME_FIELDS`, with the data folders compared as resolved paths."""
    return recipe_values(a) == recipe_values(b)


#: Config fields that decide the manifest (which images, which split).
SPLIT_FIELDS = ("data", "format", "oxford_box", "classes", "subset", "seed", "fractions")


def _holds_split_of(run_dir: Path, config: TrainConfig) -> bool:
    """True when ``run_dir`` has a ``manifest.csv`` made (per its ``config.json``) from the same
    :data:`SPLIT_FIELDS` as ``config``, e.g. by notebook 02; the data folders compared resolved."""
    saved_path = run_dir / "config.json"
    if not (run_dir / "manifest.csv").exists() or not saved_path.exists():
        return False
    saved = TrainConfig.from_dict(json.loads(saved_path.read_text()))
    return recipe_values(saved, SPLIT_FIELDS) == recipe_values(config, SPLIT_FIELDS)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------- run folder
def make_manifest(config: TrainConfig, progress: bool = True):
    """Scan ``config.data``, take the seeded ``subset`` if any, and split it.

    Returns:
        ``(manifest, scan)``: the split table (see :func:`localizer.split.assign_split`) and the
        :class:`localizer.validation.ScanResult`. The same config gives the same manifest anywhere.

    Raises:
        localizer.split.NotEnoughDataError: too few usable photos for the split (the message names
            the data folder, the number of usable photos and how many the split needs).
    """
    from .validation import scan_dataset

    scan = scan_dataset(config.data, fmt=config.format, oxford_box=config.oxford_box, classes=config.classes,
                        progress=progress)
    table = scan.table
    if config.subset and config.subset < len(table):
        table = table.sort_values("file").sample(n=config.subset, random_state=config.seed)
    try:
        return assign_split(table, seed=config.seed, fractions=config.fractions), scan
    except NotEnoughDataError as exc:
        raise NotEnoughDataError(exc.reason, exc.detail, config.data) from None


def prepare_run(config: TrainConfig, run_dir: Path | str, overwrite: bool = False, progress: bool = True) -> pd.DataFrame:
    """Scan the data, split it and save ``manifest.csv``, ``data_report.csv`` and ``config.json``
    into ``run_dir``. An identical existing manifest is kept as it is.

    Returns:
        The manifest table (one row per usable image, with ``split``).

    Raises:
        FileExistsError: ``run_dir`` holds a different manifest and ``overwrite`` is False.
    """
    run_dir = Path(run_dir)
    manifest, scan = make_manifest(config, progress)
    save_manifest(manifest, run_dir / "manifest.csv", overwrite=overwrite)
    scan.write_report(run_dir / "data_report.csv")
    write_json(run_dir / "config.json", asdict(config))
    return manifest


# ------------------------------------------------------------------------------------------- fit
SCHEDULES = ("plateau", "cosine")
#: Warm-up starts at this share of the learning rate and reaches it after ``warmup_epochs``.
WARMUP_START = 0.1


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer):
    """The learning-rate schedule of ``config.schedule`` (stepped once per epoch by :func:`fit`),
    after ``config.warmup_epochs`` of linear warm-up from :data:`WARMUP_START` of the rate (cosine only).

    Raises:
        localizer.errors.ConfigError: unknown schedule (see :data:`SCHEDULES`).
    """
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience)
    if config.schedule == "cosine":
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs - config.warmup_epochs)
        if not config.warmup_epochs:
            return cosine
        warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=WARMUP_START, total_iters=config.warmup_epochs)
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[config.warmup_epochs])
    raise ConfigError(f"unknown schedule {config.schedule!r}; choose one of {SCHEDULES}")


def make_loaders(config: TrainConfig, manifest: pd.DataFrame, device: torch.device, progress: bool = True):
    """Train and validation loaders over the decode-once cache, as :func:`fit` uses them.

    The training loader shuffles and copies cached uint8 images in ``config.workers`` processes
    (``-1``: 1 on CPU, where the model needs the cores, and 4 on an accelerator); augmentation
    happens later, on whole batches on the device (:class:`localizer.batch_augment.BatchAugment`).
    """
    cache = ImageCache(config.cache_dir, config.image_size)
    train_set = CachedBoxDataset(manifest[manifest["split"] == "train"], cache, progress=progress)
    val_set = CachedBoxDataset(manifest[manifest["split"] == "val"], cache, progress=progress)
    workers = config.workers if config.workers >= 0 else (1 if device.type == "cpu" else 4)
    pin = device.type == "cuda"
    return (make_loader(train_set, config.batch_size, shuffle=True, workers=workers, seed=config.seed, pin_memory=pin),
            make_loader(val_set, config.batch_size, pin_memory=pin))


@dataclass
class _State:
    epoch: int = 0
    best_val_iou: float = -1.0
    history: list = field(default_factory=list)
    best_epoch: int = 0


def run_epoch(model, loader, loss_name, numerics: Numerics, mean, std, optimizer=None, desc="", progress=True,
              augment=None, ema=None):
    """One pass over ``loader`` (any iterable of ``(uint8 images, targets)`` batches).

    Images are moved to ``numerics.device``, augmented there by ``augment`` (e.g.
    :class:`localizer.batch_augment.BatchAugment`) when given, normalized with ``mean``/``std`` and
    laid out and computed as ``numerics`` says (channels_last, bf16 autocast). Trains when
    ``optimizer`` is given, else only evaluates; ``ema`` (an :class:`~torch.optim.swa_utils.AveragedModel`
    of ``model``) is updated after every optimizer step. Losses and IoUs stay on the device until the end of
    the pass, so the loop never waits for a GPU (the progress bar's loss, every 10 batches, is the
    only read-back).

    Returns:
        ``(mean of the batch losses, mean IoU)``.

    Raises:
        TrainingDiverged: a NaN or infinite loss (checked on the pass's losses, before anything is
            saved).
    """
    training = optimizer is not None
    model.train(training)
    device = numerics.device
    losses, ious = [], []
    bar = tqdm(loader, desc=desc, leave=False, unit="batch", disable=not progress)
    for images, targets in bar:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if augment is not None:
            images, targets = augment(images, targets)
        images = model_input(images, numerics, mean, std)
        with torch.set_grad_enabled(training), numerics.autocast():
            preds = model(images)
        loss = box_loss(loss_name, preds.float(), targets)
        if training:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
        losses.append(loss.detach())
        ious.append(paired_iou(preds.detach().float(), targets))
        if progress and len(losses) % 10 == 0:
            bar.set_postfix(loss=f"{torch.stack(losses[-10:]).mean().item():.4f}")
    losses = torch.stack(losses)
    if not torch.isfinite(losses).all():
        step = int((~torch.isfinite(losses)).nonzero()[0])
        raise TrainingDiverged(f"{desc}: the loss became {losses[step].item()} (NaN or infinite) at batch {step + 1}")
    return float(losses.mean()), float(torch.cat(ious).mean())


def training_numerics(config: TrainConfig, device: torch.device, model, checkpoint: dict | None):
    """The numerics of a training run (see :func:`localizer.numerics.choose_numerics`) and why.

    A resumed ``auto`` run keeps the format its checkpoint was trained in when it resumes on the same
    kind of device (so that it continues as it began), instead of probing again.
    """
    if (checkpoint and config.precision == "auto" and checkpoint.get("device_type") == device.type
            and checkpoint.get("precision_used") in ("fp32", "bf16")):
        used = checkpoint["precision_used"]
        if used == "fp32" or native_bf16(device):
            return default_numerics(device, used), f"auto: as the run began ({used})"
    return choose_numerics(config.precision, device, model, config.image_size)


def fit(
    config: TrainConfig,
    run_dir: Path | str,
    resume: bool | str = False,
    overwrite: bool = False,
    progress: bool = True,
    max_epochs: int | None = None,
) -> pd.DataFrame:
    """Train a box regressor as ``config`` says, in ``run_dir``; returns the history table.

    Args:
        config: the recipe.
        run_dir: run folder; holds (or gets) ``manifest.csv``, ``config.json``, ``history.csv``,
            ``checkpoints/last.pt`` and ``checkpoints/best.pt``.
        resume: ``True``: continue from ``checkpoints/last.pt`` (same split, optimizer, scheduler,
            RNG). ``"auto"``: continue when ``last.pt`` exists and was made with the same config
            (a finished run then trains nothing and returns its history: re-running a notebook
            is safe), start afresh when there is none.
        overwrite: allow starting afresh over a folder that already holds checkpoints.
        progress: tqdm progress bars per epoch.
        max_epochs: stop after this many epochs in this call (for tests); the recipe's ``epochs``
            stays the target of a later ``resume``.

    Returns:
        History DataFrame with :data:`HISTORY_COLUMNS`, one row per epoch (1-based).

    Raises:
        FileExistsError: ``run_dir`` already holds a run and neither ``resume`` nor ``overwrite``.
        FileNotFoundError: ``resume`` without ``checkpoints/last.pt``.
        TrainingDiverged: NaN or infinite loss (``last.pt`` is the last good epoch).
        localizer.models.WeightsUnavailableError: pretrained weights cannot be found offline.
    """
    run_dir = Path(run_dir)
    last_path, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    checkpoint = None
    auto = resume == "auto"
    if auto:
        resume = last_path.exists() and not overwrite
    if resume:
        if not last_path.exists():
            raise FileNotFoundError(f"cannot resume: {last_path} does not exist")
        reconcile_checkpoints(last_path.parent)
        checkpoint = load_checkpoint(last_path)
        saved = TrainConfig.from_dict(checkpoint["config"])
        if auto and not same_recipe(saved, config):
            raise FileExistsError(f"{run_dir} holds a run with another config; choose another run folder "
                                  "or start afresh over it with --overwrite (overwrite=True in Python)")
        # The recipe comes from the checkpoint; where and how fast it runs, from this call.
        config = replace(saved, **{name: getattr(config, name) for name in RUNTIME_FIELDS})
    elif last_path.exists() and not overwrite:
        raise FileExistsError(
            f"{run_dir} already holds a training run ({last_path}); continue it with --resume, choose "
            "another run folder, or start afresh over it with --overwrite (resume=True / overwrite=True in Python)"
        )

    manifest_path = run_dir / "manifest.csv"
    if checkpoint or _holds_split_of(run_dir, config):
        manifest = load_manifest(manifest_path)
    else:  # a new folder, or one left by a start with other data: scan and split (a different manifest is refused)
        manifest = prepare_run(config, run_dir, overwrite=overwrite, progress=progress)
    write_json(run_dir / "config.json", asdict(config))
    device = resolve_device(config.device)
    seed_everything(config.seed)

    model = build_model(config.backbone, weights=None if checkpoint else config.weights, dropout=config.dropout,
                        head=config.head, image_size=config.image_size)
    mean, std = model.input_mean, model.input_std
    numerics, why = training_numerics(config, device, model, checkpoint)
    if progress:
        tqdm.write(f"numerics: {numerics} ({why})")
    numerics.place_model(model)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one input size throughout: pick the fastest kernels once
    optimizer = torch.optim.AdamW(model.parameters(), lr=effective_lr(config), weight_decay=config.weight_decay)
    scheduler = make_scheduler(config, optimizer)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True) if config.ema else None
    state = _State()
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if ema is not None:
            ema.load_state_dict(checkpoint["ema"])
        state = _State(checkpoint["epoch"], checkpoint["best_val_iou"], checkpoint["history"],
                       checkpoint.get("best_epoch", 0))

    train_loader, val_loader = make_loaders(config, manifest, device, progress)
    augment = BatchAugment(affine_p=config.affine_p)
    train_mean_box = normalized_targets(manifest[manifest["split"] == "train"]).mean(axis=0).tolist()

    last_epoch = config.epochs if max_epochs is None else min(config.epochs, state.epoch + max_epochs)
    for epoch in range(state.epoch + 1, last_epoch + 1):
        start = time.perf_counter()
        # Epoch-seeded order and augmentation: a resumed run sees the same batches it would have.
        train_loader.sampler.generator.manual_seed(config.seed * 1000 + epoch)
        torch.manual_seed(config.seed * 1000 + epoch)
        tag = f"epoch {epoch}/{config.epochs}"
        train_loss, train_iou = run_epoch(model, train_loader, config.loss, numerics, mean, std,
                                           optimizer, f"{tag} train", progress, augment=augment, ema=ema)
        with torch.no_grad():  # validation scores the weights that best.pt keeps: the EMA's, if any
            val_loss, val_iou = run_epoch(ema.module if ema else model, val_loader, config.loss, numerics, mean,
                                           std, None, f"{tag} val", progress)
        lr = optimizer.param_groups[0]["lr"]
        if config.schedule == "plateau":
            scheduler.step(val_loss)
        else:
            scheduler.step()
        state.epoch = epoch
        state.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                              "train_iou": train_iou, "val_iou": val_iou, "lr": lr,
                              "seconds": time.perf_counter() - start})
        improved = val_iou > state.best_val_iou
        if improved:
            state.best_val_iou, state.best_epoch = val_iou, epoch
        payload = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": epoch, "history": state.history,
            "best_val_iou": state.best_val_iou, "best_epoch": state.best_epoch, "config": asdict(config),
            "input_mean": mean, "input_std": std, "train_mean_box": train_mean_box,
            "device_type": device.type, "precision_used": numerics.precision,
        }
        if ema is not None:
            payload |= {"ema": ema.state_dict(), "ema_model": ema.module.state_dict()}
        # last.pt first: a kill before best.pt is written is repaired from it (reconcile_checkpoints)
        atomic_save(payload, last_path)
        if improved:
            atomic_save(best_payload(payload), best_path)
        write_csv(pd.DataFrame(state.history, columns=HISTORY_COLUMNS), run_dir / "history.csv")
        if progress:
            tqdm.write(f"{tag}: train loss {train_loss:.4f} IoU {train_iou:.3f} | "
                       f"val loss {val_loss:.4f} IoU {val_iou:.3f} | lr {lr:.3g} | "
                       f"{state.history[-1]['seconds']:.0f}s")
    return pd.DataFrame(state.history, columns=HISTORY_COLUMNS)


#: Entries every localizer checkpoint holds (``last.pt`` also ``optimizer`` and ``scheduler``).
CHECKPOINT_KEYS = ("model", "config", "epoch", "history", "input_mean", "input_std")


def best_payload(checkpoint: dict) -> dict:
    """What ``best.pt`` holds of a ``last.pt`` payload: the weights that were validated (the EMA's
    when the recipe keeps one) as ``model``, and no optimizer, scheduler or second copy of the
    weights (best.pt is for evaluation and prediction)."""
    best = {k: v for k, v in checkpoint.items() if k not in ("optimizer", "scheduler", "ema", "ema_model")}
    best["model"] = checkpoint.get("ema_model", checkpoint["model"])
    return best


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

    :func:`fit` writes ``last.pt`` (which records ``best_epoch``) before ``best.pt``. When
    ``last.pt``'s best epoch is its own epoch but ``best.pt`` is missing or from another epoch, the
    kill came in between, and ``last.pt``'s weights are the best ones: ``best.pt`` is rewritten from
    them. Returns True when it did so.

    Raises:
        CheckpointError: ``last.pt`` or ``best.pt`` is not a localizer checkpoint.
    """
    last_path, best_path = Path(folder) / "last.pt", Path(folder) / "best.pt"
    if not last_path.is_file():
        return False
    last = load_checkpoint(last_path)
    if last.get("best_epoch") != last["epoch"]:
        return False
    if best_path.is_file() and load_checkpoint(best_path)["epoch"] == last["epoch"]:
        return False
    atomic_save(best_payload(last), best_path)
    return True


def load_model(checkpoint_path: Path | str, device: str | torch.device = "cpu"):
    """Load a trained model from a checkpoint (safely: see :func:`load_checkpoint`).

    A ``best.pt`` beside a ``last.pt`` is first made consistent with it (:func:`reconcile_checkpoints`).

    Returns:
        ``(model, info)``: the model in eval mode on ``device``, and a dict with ``config``
        (:class:`TrainConfig`), ``input_mean``, ``input_std``, ``epoch``, ``history``,
        ``train_mean_box`` (the mean normalized xyxy training box, or None in older checkpoints) and
        ``numerics`` (:func:`inference_numerics`: pass it to ``predict_batch``).

    Raises:
        FileNotFoundError: no such checkpoint.
        CheckpointError: the file is not a localizer checkpoint (the message names it).
    """
    path = Path(checkpoint_path)
    if path.name == "best.pt":
        reconcile_checkpoints(path.parent)
    checkpoint = load_checkpoint(path)
    try:
        config = TrainConfig.from_dict(checkpoint["config"])
        model = build_model(config.backbone, weights=None, dropout=config.dropout, head=config.head,
                            image_size=config.image_size)
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


def inference_numerics(checkpoint: dict, device: torch.device) -> Numerics:
    """Evaluation and prediction compute as the training did (its validation scores were measured
    so): bf16 when the checkpoint was trained in bf16 and ``device`` has native bf16, else float32."""
    used = checkpoint.get("precision_used", "fp32")
    return default_numerics(device, "bf16" if used == "bf16" and native_bf16(device) else "fp32")
