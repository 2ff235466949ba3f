"""A run's test results as notebook 04 shows them: its best checkpoint scored on a split beside the
two baselines, in one call (:func:`evaluate_run`), and saved beside it in the run folder; and how well
the confidence of each box ranks them (:func:`confidence_table`, :func:`format_confidence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from localizer.data.download import display_path
from localizer.engine.evaluation import evaluate_checkpoint
from localizer.engine.run import Run
from localizer.files import write_csv, write_json
from localizer.report.tables import PIPELINE_CHECK, format_metrics


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
        pipeline_check: the run is of the :data:`~localizer.report.tables.PIPELINE_CHECK` profile.
    """

    metrics: dict
    per_image: pd.DataFrame
    checkpoint: str
    pipeline_check: bool = False

    @property
    def table(self) -> str:
        """The model and the baselines side by side, in percent, with the 95 % intervals of the mean IoU
        and of the accuracy at IoU > 0.5 (:func:`localizer.report.tables.format_metrics`)."""
        return format_metrics(self.metrics, self.pipeline_check)

    @property
    def confidence_table(self) -> pd.DataFrame:
        """How well the confidence ranks the boxes: the risk-coverage table (:func:`confidence_table`)."""
        return confidence_table(self.metrics)

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``metrics.json`` and ``per_image_<split>.csv`` into the run folder ``folder`` (atomically,
        replacing the run's own earlier results); returns their paths."""
        folder = Path(folder)
        return [write_json(folder / "metrics.json", self.metrics, replace=True),
                write_csv(self.per_image, folder / f"per_image_{self.metrics['split']}.csv", replace=True)]


def confidence_table(metrics: dict) -> pd.DataFrame:
    """The risk-coverage table of ``metrics`` (``metrics["confidence"]`` of
    :func:`localizer.engine.evaluation.evaluate_model`) for reading: one row per coverage,
    ``most confident`` (e.g. ``80 %``), ``photos``, ``acc IoU>0.5 %``, ``mean IoU %`` (2 decimals) and
    ``lowest confidence`` (3 decimals, marked ``tied`` where photos of that confidence are left out too).
    """
    table = pd.DataFrame(metrics["confidence"]["risk_coverage"])
    lowest = [f"{value:.3f}{' tied' * tied}" for value, tied in zip(table["min_confidence"], table["tied"])]
    return pd.DataFrame({"most confident": [f"{100 * c:g} %" for c in table["coverage"]],
                         "photos": table["photos"].astype(int),
                         "acc IoU>0.5 %": (100 * table["acc_50"]).round(2),
                         "mean IoU %": (100 * table["mean_iou"]).round(2),
                         "lowest confidence": lowest}).set_index("most confident")


def format_confidence(metrics: dict) -> str:
    """Spearman's correlation of confidence and IoU and :func:`confidence_table` as text, with the split
    and the number of photos; what the numbers cannot say when the confidence ranks nothing (Spearman
    undefined: one confidence, or one IoU, for every photo) or a row's cut falls among photos of equal
    confidence (``tied``)."""
    rho = metrics["confidence"]["spearman"]
    rank = (f"Spearman {rho:.3f}" if rho == rho else
            "Spearman undefined (every photo has the same confidence, or the same IoU: nothing to rank)")
    table = confidence_table(metrics)
    text = (f"confidence vs IoU ({metrics['split']} split, n = {metrics['n']}): {rank}; the most confident photos "
            f"(risk-coverage):\n{table.to_string()}")
    tied = [name for name, lowest in table["lowest confidence"].items() if lowest.endswith("tied")]
    if tied:
        text += (f"\ntied: photos of the row's lowest confidence are left out too ({', '.join(tied)}), so which are "
                 "kept follows the photos' order, not the confidence")
    return text


def evaluate_run(run: Run, split: str = "test", which: str = "best.pt", progress: bool = True) -> RunResults:
    """:func:`localizer.engine.evaluation.evaluate_checkpoint` of the run's checkpoint ``which`` on ``split``,
    with a line naming the checkpoint for reading.

    Raises:
        FileNotFoundError, localizer.engine.run.CheckpointError: the checkpoint is missing or unreadable
            (:meth:`localizer.engine.run.Run.load_model`).
        localizer.errors.DataError: the split has no rows.
    """
    config = run.config
    metrics, per_image, info = evaluate_checkpoint(run, split, which, progress)
    checkpoint = (f"checkpoint: {display_path(run.checkpoints / which)} (epoch {info['epoch']}, {config.backbone}, "
                  f"{config.image_size} px, {info['numerics']})")
    return RunResults(metrics, per_image, checkpoint, run.profile == PIPELINE_CHECK)
