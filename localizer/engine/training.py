"""The training loop: one run's epochs, from a run folder made by :meth:`localizer.engine.run.Run.create`.

The run trains the epochs of its plan (:func:`localizer.engine.schedule.plan_for`: the recipe's
``epochs``, or as many as its ``steps`` of optimizer updates take on the training split). Per epoch
the history records ``step`` (optimizer updates so far), ``train_loss`` (mean of the epoch's batch
losses), ``val_loss`` (after the epoch, model in eval mode), ``train_iou``/``val_iou`` (mean IoU),
``lr`` and ``seconds``; :meth:`localizer.engine.run.Run.save_epoch` writes ``best.pt`` (when the epoch
is the one the recipe keeps: :func:`localizer.engine.checkpoints.kept_row`), ``history.csv`` and ``last.pt``
after every epoch. :func:`train` with
``resume=True`` continues a killed run from ``last.pt`` with the same split, optimizer and scheduler
state, and the same batches: the shuffle order and the augmentation of epoch ``e`` are
seeded by ``(seed, e)`` alone, whether the run was interrupted or not.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from localizer.data.batch_augment import BatchAugment
from localizer.data.cache import ImageCache
from localizer.engine.checkpoints import FORMAT_VERSION, kept_row
from localizer.data.datasets import CachedBoxDataset, batch_keys, make_loader, normalized_targets, seed_epoch
from localizer.engine import distributed
from localizer.metrics import paired_iou
from localizer.model.models import build_model
from localizer.engine.numerics import Numerics, choose_numerics, default_numerics, native_bf16, resolve_device
from localizer.progress import epoch_line, expected_time_line, finished_lines, progress_bar, time_left
from localizer.recipe import RUNTIME_FIELDS, TrainConfig, effective_lr
from localizer.engine.run import Run
from localizer.engine.schedule import TrainingPlan, describe_plan, make_scheduler, plan_for
from localizer.engine.numerics import model_input

HISTORY_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "train_iou", "val_iou", "lr", "seconds"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_loaders(config: TrainConfig, manifest: pd.DataFrame, device: torch.device, progress: bool = True):
    """Train and validation loaders over the decode-once cache, as :func:`train` uses them.

    The training loader shuffles and copies cached uint8 images in ``config.workers`` processes
    (``-1``: 1 on CPU, where the model needs the cores, and 4 on an accelerator); augmentation
    happens later, on whole batches on the device (:class:`localizer.data.batch_augment.BatchAugment`).
    Under torchrun, each process loads its shard: ``batch_size / N`` photos of each training batch, and
    whole validation batches (:mod:`localizer.engine.distributed`).
    The targets are ``(N, B, 4)``: every box of a manifest that keeps them, else the primary one
    (:func:`localizer.data.datasets.box_targets`).
    """
    cache = ImageCache(config.cache_dir, config.image_size)
    train_set = CachedBoxDataset(manifest[manifest["split"] == "train"], cache, progress=progress, padded=True)
    val_set = CachedBoxDataset(manifest[manifest["split"] == "val"], cache, progress=progress, padded=True)
    workers = config.workers if config.workers >= 0 else (1 if device.type == "cpu" else 4)
    pin, shard = device.type == "cuda", {"replicas": distributed.world(), "rank": distributed.rank()}
    return (make_loader(train_set, distributed.local_batch(config.batch_size), shuffle=True, workers=workers,
                        seed=config.seed, pin_memory=pin, **shard),
            make_loader(val_set, config.batch_size, pin_memory=pin, **shard))


def run_epoch(model, loader, numerics: Numerics, optimizer=None, desc="", progress=True, augment=None):
    """One pass over ``loader`` (any iterable of ``(uint8 images, targets (N, B, 4))`` batches, the
    primary box first: :func:`localizer.data.datasets.box_targets`).

    Images are moved to ``numerics.device``, augmented there by ``augment`` (e.g.
    :class:`localizer.data.batch_augment.BatchAugment`) when given, and laid out and computed as
    ``numerics`` says (channels_last, bf16 autocast). Trains when
    ``optimizer`` is given, else only evaluates. The loss is the model's own
    (:meth:`localizer.model.models.BoxRegressor.loss`: its head's, with the box loss and ``dfl`` it was
    built with), and the IoU is that of the boxes it predicts with the primary box. Losses and IoUs
    stay on the device until the end of the pass, so the loop never waits for a GPU (the progress
    bar's loss, every 10 batches, is the only read-back).

    Under torchrun, the losses and IoUs of every process are gathered first
    (:func:`localizer.engine.distributed.gather`): a validation pass scores each batch once, in the order
    of one process (:func:`localizer.data.datasets.batch_keys`), so its means are those of one process.

    Returns:
        ``(mean of the batch losses, mean IoU)``, the same in every process.

    Raises:
        TrainingDiverged: a NaN or infinite loss (checked on the pass's losses, before anything is
            saved).
    """
    training = optimizer is not None
    model.train(training)
    device = numerics.device
    losses, ious = [], []
    bar = progress_bar(loader, show=progress, desc=desc, leave=False, unit="batch")
    for images, targets in bar:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if augment is not None:
            images, targets = augment(images, targets)
        images = model_input(images, numerics)
        with torch.set_grad_enabled(training), numerics.autocast():
            loss, preds = model.loss(images, targets)
        if training:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        losses.append(loss.detach())
        ious.append(paired_iou(preds.detach().float(), targets[:, 0]))
        if progress and len(losses) % 10 == 0:
            bar.set_postfix(loss=f"{torch.stack(losses[-10:]).mean().item():.4f}")
    scores = distributed.gather(list(zip(losses, ious)), None if training else batch_keys(loader))
    losses, ious = torch.stack([loss for loss, _ in scores]), [iou for _, iou in scores]
    if not torch.isfinite(losses).all():
        step = int((~torch.isfinite(losses)).nonzero()[0])
        raise TrainingDiverged(f"{desc}: the loss became {losses[step].item()} (NaN or infinite) at batch {step + 1}")
    return float(losses.mean()), float(torch.cat(ious).mean())


def training_numerics(config: TrainConfig, device: torch.device, model,
                      checkpoint: dict | None) -> tuple[Numerics, str]:
    """The numerics of a training run (see :func:`localizer.engine.numerics.choose_numerics`) and why.

    A resumed ``auto`` run keeps the format its checkpoint was trained in when it resumes on the same
    kind of device (so that it continues as it began), instead of choosing again.
    """
    if (checkpoint and config.precision == "auto" and checkpoint["device_type"] == device.type
            and checkpoint["precision_used"] in ("fp32", "bf16")):
        used = checkpoint["precision_used"]
        if used == "fp32" or native_bf16(device):
            return default_numerics(device, used), f"auto: as the run began ({used})"
    return choose_numerics(config.precision, device, model, config.image_size)


@dataclass
class _Session:
    """What one call of :func:`train` trains with."""

    config: TrainConfig
    plan: TrainingPlan
    model: torch.nn.Module
    trained: torch.nn.Module  # what the updates call: the model, or its DDP (localizer.engine.distributed.wrap)
    numerics: Numerics
    optimizer: torch.optim.Optimizer
    scheduler: object
    epoch: int = 0
    history: list = field(default_factory=list)


def _start(config: TrainConfig, plan: TrainingPlan, checkpoint: dict | None, progress: bool) -> _Session:
    """Model, numerics, optimizer and scheduler of a run of ``plan``, at the state of ``checkpoint`` if any."""
    device = distributed.local_device(resolve_device(config.device))
    seed_everything(config.seed)
    model = build_model(config.backbone, weights=None if checkpoint else config.weights, dropout=config.dropout,
                        head=config.head, image_size=config.image_size, loss=config.loss, dfl=config.dfl)
    numerics, why = training_numerics(config, device, model, checkpoint)
    if progress:
        tqdm.write(f"numerics: {numerics} ({why})")
    numerics.place_model(model)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one input size throughout: pick the fastest kernels once
    optimizer = torch.optim.AdamW(model.parameters(), lr=effective_lr(config), weight_decay=config.weight_decay)
    session = _Session(config, plan, model, None, numerics, optimizer, make_scheduler(config, optimizer, plan.epochs))
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        session.scheduler.load_state_dict(checkpoint["scheduler"])
        session.epoch, session.history = checkpoint["epoch"], checkpoint["history"]
    session.trained = distributed.wrap(model)  # after the checkpoint's weights: DDP copies rank 0's to all
    return session


def _epoch(session: _Session, epoch: int, loaders, augment: BatchAugment, progress: bool) -> dict:
    """Train and validate one epoch; step the schedule; returns the epoch's history row."""
    config, model = session.config, session.model
    start = time.perf_counter()
    # Epoch-seeded order and augmentation: a resumed run sees the same batches it would have. Each process
    # draws its own augmentation (rank 0, or one process, as the seed says).
    seed_epoch(loaders[0], config.seed, epoch)
    torch.manual_seed(config.seed * 1000 + epoch + (distributed.rank() << 32))
    tag = f"epoch {epoch}/{session.plan.epochs}"
    train_loss, train_iou = run_epoch(session.trained, loaders[0], session.numerics, session.optimizer,
                                      f"{tag} train", progress, augment=augment)
    distributed.share_buffers(model)
    with torch.no_grad():
        val_loss, val_iou = run_epoch(model, loaders[1], session.numerics, None, f"{tag} val", progress)
    lr = session.optimizer.param_groups[0]["lr"]
    if config.schedule == "plateau":
        session.scheduler.step(val_loss)
    else:
        session.scheduler.step()
    return {"epoch": epoch, "step": epoch * session.plan.updates_per_epoch, "train_loss": train_loss,
            "val_loss": val_loss, "train_iou": train_iou, "val_iou": val_iou, "lr": lr,
            "seconds": time.perf_counter() - start}


def _payload(session: _Session, train_mean_box: list[float]) -> dict:
    """What ``last.pt`` holds after the session's latest epoch (``best.pt``: see
    :func:`localizer.engine.checkpoints.best_payload`); the kept epoch is the history's kept row."""
    return {
        "model": session.model.state_dict(), "optimizer": session.optimizer.state_dict(),
        "scheduler": session.scheduler.state_dict(), "epoch": session.epoch, "history": session.history,
        "config": asdict(session.config), "train_mean_box": train_mean_box,
        "device_type": session.numerics.device.type, "precision_used": session.numerics.precision,
        "plan": session.plan.as_dict(), "format_version": FORMAT_VERSION,
    }


def _prepare(run: Run, checkpoint: dict | None, progress: bool):
    """What :func:`train` trains ``run`` with, continuing from ``checkpoint`` if any (its recipe, with this
    call's runtime fields, and its plan): ``(session, (train loader, val loader), augment, train_mean_box)``."""
    config = run.config
    if checkpoint:  # the recipe comes from the checkpoint; where and how fast it runs, from this call
        config = replace(TrainConfig.from_dict(checkpoint["config"]),
                         **{name: getattr(config, name) for name in RUNTIME_FIELDS})
    manifest = run.manifest
    plan = plan_for(config, manifest, checkpoint)
    session = _start(config, plan, checkpoint, progress)
    loaders = make_loaders(config, manifest, session.numerics.device, progress)
    if len(loaders[0]) != plan.updates_per_epoch:
        raise RuntimeError(f"{run.folder}: the training loader has {len(loaders[0])} batches per epoch, the plan "
                           f"{plan.updates_per_epoch} ({plan.n_train} photos in batches of {config.batch_size})")
    augment = BatchAugment(affine_p=config.affine_p)
    train_mean_box = normalized_targets(manifest[manifest["split"] == "train"]).mean(axis=0).tolist()
    return session, loaders, augment, train_mean_box


def train(run: Run, resume: bool | str = False, overwrite: bool = False, progress: bool = True,
          max_epochs: int | None = None) -> pd.DataFrame:
    """Train the recipe of ``run`` on its split; returns the history table.

    Args:
        run: the run folder (:meth:`~localizer.engine.run.Run.create` or :meth:`~localizer.engine.run.Run.open`).
        resume: True: continue from ``checkpoints/last.pt``; ``"auto"``: continue when it exists
            (a finished run trains nothing and returns its history: re-running a notebook is
            safe), start afresh when there is none.
        overwrite: allow starting afresh over a folder that already holds checkpoints.
        progress: a text line per epoch (loss, val IoU, seconds, time left; :func:`localizer.progress.epoch_line`),
            and tqdm progress bars within each epoch (off when ``TQDM_DISABLE=1``, as in headless
            runs: :mod:`localizer.report.runner`), after a first line with the plan's epochs and
            updates and why (:func:`localizer.engine.schedule.describe_plan`). A finished run prints
            that it is, and its training log (:func:`localizer.progress.finished_lines`).
        max_epochs: stop after this many epochs in this call (for tests; not the recipe's
            ``max_epochs``); the plan's epochs stay the target of a later ``resume``.

    Returns:
        History DataFrame with :data:`HISTORY_COLUMNS`, one row per epoch (1-based); ``step`` is the
        optimizer updates after the epoch (epoch x the plan's updates per epoch).

    Raises:
        FileExistsError, FileNotFoundError: see :meth:`localizer.engine.run.Run.resume_point`.
        TrainingDiverged: NaN or infinite loss (``last.pt`` is the last good epoch).
        localizer.model.models.WeightsUnavailableError: pretrained weights cannot be found offline.
    """
    checkpoint = run.resume_point(resume, overwrite)
    progress = progress and distributed.is_main()
    session, loaders, augment, train_mean_box = _prepare(run, checkpoint, progress)
    config, plan = session.config, session.plan
    last_epoch = plan.epochs if max_epochs is None else min(plan.epochs, session.epoch + max_epochs)
    if progress and session.epoch >= plan.epochs:  # a notebook re-run on a finished run still shows how it trained
        tqdm.write("\n".join(finished_lines(run.folder.name, session.history, plan,
                                              kept_row(session.history, config.keep), config.keep)))
    elif progress:
        tqdm.write(f"plan: {describe_plan(config, plan)}")
    seconds = []
    for epoch in range(session.epoch + 1, last_epoch + 1):
        row = _epoch(session, epoch, loaders, augment, progress)
        seconds.append(row["seconds"])
        session.epoch = epoch
        session.history.append(row)
        kept = kept_row(session.history, config.keep)
        history = pd.DataFrame(session.history, columns=HISTORY_COLUMNS)
        if distributed.is_main():
            run.save_epoch(_payload(session, train_mean_box), kept is not None and kept["epoch"] == epoch, history)
        if progress:
            tqdm.write(epoch_line(row, plan, time_left(seconds, plan.epochs - epoch)))
            if epoch == 2 and len(seconds) == 2 and plan.epochs > 2:  # a new run's steady rate: see the line's doc
                tqdm.write(expected_time_line(plan, seconds))
    return pd.DataFrame(session.history, columns=HISTORY_COLUMNS)
