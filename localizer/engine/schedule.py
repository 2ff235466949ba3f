"""How long a run trains and at what learning rate: its :class:`TrainingPlan` (epochs, optimizer updates),
resolved once from the recipe and the size of its training split, and its learning-rate schedule.

A recipe gives its length in epochs (``epochs``) or in optimizer updates (``steps``, with a floor and a
ceiling on the epochs: :func:`localizer.recipe.epochs_for`). The plan is resolved when the run's
manifest is known, recorded in every checkpoint (``plan``) and taken from there on resume, so a run
goes on with the epochs it began with; ``config.json`` keeps the recipe as given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import torch

from localizer.errors import ConfigError
from localizer.progress import count
from localizer.recipe import SCHEDULES, TrainConfig, epochs_for, nearest_epochs, updates_per_epoch


@dataclass(frozen=True)
class TrainingPlan:
    """A run's resolved length.

    Attributes:
        epochs: epochs to train (the cosine schedule's ``T_max``).
        updates_per_epoch: optimizer updates per epoch, ``ceil(n_train / batch_size)``.
        updates: ``epochs x updates_per_epoch``, the optimizer updates of the whole run.
        n_train: photos in the training split.
    """

    epochs: int
    updates_per_epoch: int
    updates: int
    n_train: int

    def as_dict(self) -> dict:
        """The plan as the checkpoints record it (``plan``; whole numbers only)."""
        return asdict(self)


def plan_for(config: TrainConfig, manifest: pd.DataFrame, checkpoint: dict | None = None) -> TrainingPlan:
    """The plan of ``config`` on the train rows of ``manifest``; a ``checkpoint`` gives the one it records
    instead (``plan``), as the run began.

    E.g. ``quick`` on the 1,698 lion training photos: ``TrainingPlan(epochs=13, updates_per_epoch=54,
    updates=702, n_train=1698)``.

    Raises:
        ValueError: ``config.steps`` is set and the manifest has no train rows.
    """
    if checkpoint is not None:
        return TrainingPlan(**checkpoint["plan"])
    n_train = int((manifest["split"] == "train").sum())
    per_epoch = updates_per_epoch(n_train, config.batch_size)
    epochs = epochs_for(config, n_train)
    return TrainingPlan(epochs, per_epoch, epochs * per_epoch, n_train)


def describe_plan(config: TrainConfig, plan: TrainingPlan) -> str:
    """How many epochs and optimizer updates ``plan`` trains, and why (the rule:
    :func:`localizer.recipe.epochs_for`), e.g. ``13 epochs of 54 updates (702 updates: the recipe asks for
    700, steps=700, on 1,698 training photos in batches of 32: 13.0 epochs, rounded to whole epochs)``;
    ``capped at the ceiling max_epochs=100`` or ``raised to the floor min_epochs=4`` when the bounds
    decide, and ``(2,160 updates: epochs=40, on ...)`` for a recipe in epochs."""
    length = f"{count(plan.epochs, 'epoch')} of {plan.updates_per_epoch} updates ({plan.updates:,} updates: "
    photos = f"on {plan.n_train:,} training photos in batches of {config.batch_size}"
    if config.steps is None:
        return length + f"epochs={config.epochs}, {photos})"
    wanted, nearest = config.steps / plan.updates_per_epoch, nearest_epochs(config.steps, plan.updates_per_epoch)
    if nearest < config.min_epochs and plan.epochs == config.min_epochs:
        why = f"raised to the floor min_epochs={config.min_epochs}"
    elif config.max_epochs is not None and nearest > config.max_epochs and plan.epochs == config.max_epochs:
        why = f"capped at the ceiling max_epochs={config.max_epochs}"
    else:
        why = "rounded to whole epochs"
    return length + f"the recipe asks for {config.steps:,}, steps={config.steps}, {photos}: {wanted:.1f} epochs, {why})"


def history_updates(history: pd.DataFrame) -> tuple[int, int, int]:
    """``(epochs, updates_per_epoch, updates)`` of a non-empty history table
    (:data:`localizer.engine.training.HISTORY_COLUMNS`) as far as it goes, from its last row's ``step``.
    E.g. the 13 epochs of ``quick`` on the lion photos: ``(13, 54, 702)``."""
    last = history.iloc[-1]
    epochs, updates = int(last["epoch"]), int(last["step"])
    return epochs, updates // epochs, updates


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, epochs: int):
    """The learning-rate schedule of ``config.schedule`` over a run of ``epochs`` epochs (the plan's;
    stepped once per epoch by :func:`localizer.engine.training.train`).

    Raises:
        localizer.errors.ConfigError: unknown schedule (see :data:`localizer.recipe.SCHEDULES`).
    """
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    raise ConfigError(f"unknown schedule {config.schedule!r}; choose one of {SCHEDULES}")
