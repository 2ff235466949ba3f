"""Helpers shared by the tests."""

from dataclasses import asdict
from pathlib import Path

from localizer.recipe import RUNTIME_FIELDS, TrainConfig
from localizer.engine.run import Run
from localizer.engine.training import train


def fit(config: TrainConfig, folder: Path, resume: bool | str = False, overwrite: bool = False, progress: bool = False,
        max_epochs: int | None = None):
    """Train ``config`` in ``folder`` as notebooks 02 and 03 do (``Run.create``, then ``train``), or
    continue it as ``train --resume`` does (``Run.open`` with this config's runtime fields)."""
    if resume is True:
        run = Run.open(folder, **{k: v for k, v in asdict(config).items() if k in RUNTIME_FIELDS})
    else:
        run = Run.create(config, folder, overwrite=overwrite, progress=progress)
    return train(run, resume=resume, overwrite=overwrite, progress=progress, max_epochs=max_epochs)
