"""Checkpoints of a run: ``last.pt`` after every epoch, ``best.pt`` for the best validation IoU.

Crash safety: ``last.pt`` is written first and holds the history, whose best row names the best
epoch (:func:`best_row`); ``best.pt`` follows. A kill between the two leaves a ``last.pt`` whose best
epoch is its own and an older ``best.pt``: :func:`reconcile_checkpoints` (on resume and when ``best.pt``
is loaded) rewrites ``best.pt`` from ``last.pt``'s weights, which are that best epoch's. Checkpoints
hold only tensors, numbers, strings, lists and dicts and are read with ``torch.load(weights_only=True)``,
which cannot run code.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from localizer.errors import ConfigError, DataError
from localizer.files import atomic_save
from localizer.model.models import build_model
from localizer.engine.numerics import Numerics, default_numerics, native_bf16, resolve_device
from localizer.recipe import TrainConfig

LAST, BEST = "last.pt", "best.pt"

#: Entries every localizer checkpoint holds (``last.pt`` also ``optimizer`` and ``scheduler``).
CHECKPOINT_KEYS = ("model", "config", "epoch", "history", "input_mean", "input_std", "train_mean_box",
                   "device_type", "precision_used")


class CheckpointError(DataError):
    """A file that is not a localizer checkpoint (foreign, malformed, or holding objects other than
    tensors, numbers, strings, lists and dicts, which ``weights_only`` loading refuses)."""


def best_row(history: list[dict]) -> dict | None:
    """The best row of a history (a list of :data:`localizer.engine.training.HISTORY_COLUMNS` rows): the
    highest ``val_iou``, the earliest on ties (an epoch improves only on a strictly higher score); None
    for a history without a score. The run's best epoch and score are derived from it, never stored."""
    ious = pd.Series([row["val_iou"] for row in history], dtype=float)
    return None if ious.isna().all() else history[int(ious.idxmax())]


def best_payload(checkpoint: dict) -> dict:
    """What ``best.pt`` holds of a ``last.pt`` payload: all but the optimizer and scheduler states
    (best.pt is for evaluation and prediction)."""
    return {k: v for k, v in checkpoint.items() if k not in ("optimizer", "scheduler")}


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

    When ``last.pt``'s best epoch (:func:`best_row` of its history) is its own epoch but ``best.pt``
    is missing or from another epoch, the kill came in between, and ``last.pt``'s weights are the best
    ones: ``best.pt`` is rewritten from them. Returns True when it did so.

    Raises:
        CheckpointError: ``last.pt`` or ``best.pt`` is not a localizer checkpoint.
    """
    last_path, best_path = Path(folder) / LAST, Path(folder) / BEST
    if not last_path.is_file():
        return False
    last = load_checkpoint(last_path)
    best = best_row(last["history"])
    if best is None or best["epoch"] != last["epoch"]:
        return False
    if best_path.is_file() and load_checkpoint(best_path)["epoch"] == last["epoch"]:
        return False
    atomic_save(best_payload(last), best_path)
    return True


def inference_numerics(checkpoint: dict, device: torch.device) -> Numerics:
    """Evaluation and prediction compute as the training did (its validation scores were measured
    so): bf16 when the checkpoint was trained in bf16 and ``device`` has native bf16, else float32."""
    used = checkpoint["precision_used"]
    return default_numerics(device, "bf16" if used == "bf16" and native_bf16(device) else "fp32")


def load_model(checkpoint_path: Path | str, device: str | torch.device = "cpu"):
    """Load a trained model from a checkpoint (safely: see :func:`load_checkpoint`).

    A ``best.pt`` beside a ``last.pt`` is first made consistent with it (:func:`reconcile_checkpoints`).

    Returns:
        ``(model, info)``: the model in eval mode on ``device``, and a dict with ``config``
        (:class:`~localizer.recipe.TrainConfig`), ``input_mean``, ``input_std``, ``epoch``,
        ``history``, ``train_mean_box`` (the mean normalized xyxy training box) and ``numerics`` (:func:`inference_numerics`: pass it to ``predict_batch``).

    Raises:
        FileNotFoundError: no such checkpoint.
        CheckpointError: the file is not a localizer checkpoint, or its recipe names an option this
            version no longer has (:data:`localizer.recipe.REMOVED_FIELDS`); the message names the file.
    """
    path = Path(checkpoint_path)
    if path.name == BEST:
        reconcile_checkpoints(path.parent)
    checkpoint = load_checkpoint(path)
    try:
        config = TrainConfig.from_dict(checkpoint["config"])
        model = build_model(config.backbone, weights=None, dropout=config.dropout, head=config.head,
                            image_size=config.image_size, loss=config.loss, dfl=config.dfl)
        model.load_state_dict(checkpoint["model"])
    except (ConfigError, KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError("not-a-checkpoint", f"its recipe or weights do not make a localizer model: {exc}",
                              path) from None
    device = resolve_device(device) if isinstance(device, str) else device
    numerics = inference_numerics(checkpoint, device)
    numerics.place_model(model).eval()
    info = {"config": config, "input_mean": tuple(checkpoint["input_mean"]),
            "input_std": tuple(checkpoint["input_std"]), "epoch": checkpoint["epoch"],
            "history": checkpoint["history"], "train_mean_box": checkpoint["train_mean_box"],
            "numerics": numerics}
    return model, info
