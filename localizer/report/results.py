"""A run's test results as notebook 04 shows them: its best checkpoint scored on a split beside the
two baselines, in one call (:func:`evaluate_run`), and saved beside it in the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from localizer.data.download import display_path
from localizer.engine.evaluation import evaluate_model, format_metrics
from localizer.engine.run import Run
from localizer.files import write_csv, write_json


@dataclass
class RunResults:
    """The scores of a run's checkpoint on one split.

    Attributes:
        metrics: as :func:`localizer.engine.evaluation.evaluate_model` returns them (``mean_iou``,
            ``acc_50``, ..., ``n``, ``intervals`` (95 % bootstrap intervals over the photos, seeded with
            the run's seed), ``split``, ``tta``, ``baselines``, ``bootstrap``).
        per_image: one row per scored photo: ground truth and predicted pixel boxes of the original
            photo and ``iou`` (see :func:`~localizer.engine.evaluation.evaluate_model`).
        checkpoint: which checkpoint was scored, for reading (path, epoch, backbone, input size, numerics).
    """

    metrics: dict
    per_image: pd.DataFrame
    checkpoint: str

    @property
    def table(self) -> str:
        """The model and the baselines side by side, in percent, with the 95 % intervals of the mean IoU
        and of the accuracy at IoU > 0.5 (:func:`localizer.engine.evaluation.format_metrics`)."""
        return format_metrics(self.metrics)

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``metrics.json`` and ``per_image_<split>.csv`` into ``folder`` (atomically); returns their paths."""
        folder = Path(folder)
        return [write_json(folder / "metrics.json", self.metrics),
                write_csv(self.per_image, folder / f"per_image_{self.metrics['split']}.csv")]


def evaluate_run(run: Run, split: str = "test", which: str = "best.pt", progress: bool = True) -> RunResults:
    """Score the run's checkpoint ``which`` on the ``split`` rows of its manifest, as the recipe says:
    on ``config.device``, with flip test-time augmentation when ``config.tta``, the random-box baseline
    seeded with ``config.seed`` and the mean-box baseline from the training split.

    Raises:
        FileNotFoundError, localizer.engine.run.CheckpointError: the checkpoint is missing or unreadable
            (:meth:`localizer.engine.run.Run.load_model`).
        localizer.errors.DataError: the split has no rows.
    """
    config = run.config
    model, info = run.load_model(which, device=config.device)
    metrics, per_image = evaluate_model(model, run.manifest, config.image_size, info["input_mean"], info["input_std"],
                                        split=split, tta=config.tta, cache_dir=config.cache_dir, seed=config.seed,
                                        progress=progress, numerics=info["numerics"])
    checkpoint = (f"checkpoint: {display_path(run.checkpoints / which)} (epoch {info['epoch']}, {config.backbone}, "
                  f"{config.image_size} px, {info['numerics']})")
    return RunResults(metrics, per_image, checkpoint)
