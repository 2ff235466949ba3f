"""Checkpoints of a run: ``last.pt`` after every epoch, ``best.pt`` for the epoch the recipe keeps (the best
validation IoU, or the last epoch: ``TrainConfig.keep``).

Crash safety: each file is written atomically, and ``last.pt`` last of an epoch's files
(:meth:`localizer.engine.run.Run.save_epoch`): a kill before it leaves the previous epoch's ``last.pt``,
from which a resumed run trains that epoch again (the same batches) and writes its files again, so
no file needs repair and reading one writes nothing. ``last.pt`` holds the history, whose kept row
names the kept epoch (:func:`kept_row`). Checkpoints hold only tensors, numbers, strings, lists and
dicts and are read with ``torch.load(weights_only=True)``, which cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import torch

from localizer.engine.numerics import Numerics, default_numerics, native_bf16, resolve_device
from localizer.errors import ConfigError, DataError, first_line
from localizer.model.models import build_model
from localizer.recipe import TrainConfig

LAST, BEST = "last.pt", "best.pt"
#: The format of a run folder and of its checkpoints, written into both (the run folder's marker file,
#: each checkpoint's ``format_version``); a file of any other format is refused (:func:`check_format`).
FORMAT_VERSION = 1

#: Entries every localizer checkpoint holds (``last.pt`` also ``optimizer`` and ``scheduler``).
CHECKPOINT_KEYS = ("model", "config", "epoch", "history", "train_mean_box", "device_type", "precision_used")


class CheckpointError(DataError):
    """A file that is not a localizer checkpoint (foreign, malformed, or holding objects other than
    tensors, numbers, strings, lists and dicts, which ``weights_only`` loading refuses)."""


class FormatError(DataError):
    """A run folder or checkpoint written in another format than :data:`FORMAT_VERSION`."""


def check_format(version, path: Path | str) -> None:
    """Refuse a file of a format other than :data:`FORMAT_VERSION` (``version`` None: written before
    formats had a number).

    Raises:
        FormatError: naming the file and both formats.
    """
    if version != FORMAT_VERSION:
        found = "no format version (an older localizer)" if version is None else f"format {version}"
        raise FormatError("other-format", f"written in {found}; this localizer reads format {FORMAT_VERSION} only: "
                          "train the run again, or use the version that wrote it", path)


def kept_row(history: list[dict] | pd.DataFrame, keep: str = "best") -> dict | None:
    """The row of a history (a list of :data:`localizer.engine.training.HISTORY_COLUMNS` rows, or their table)
    whose weights ``best.pt`` holds, by the recipe's ``keep`` (:class:`localizer.recipe.TrainConfig`):

    - ``"best"``: the highest ``val_iou``, the earliest on ties (an epoch improves only on a strictly higher
      score); None for a history without a score.
    - ``"last"``: the latest row (None for an empty history). A choice among many epochs by the mean IoU of
      15-30 validation photos favours a lucky epoch; the last one of a schedule that ends at a learning rate
      near 0 (``cosine``) is the weights the schedule converged to.

    The run's kept epoch and score are derived from it, never stored.
    """
    if isinstance(history, pd.DataFrame):
        history = history.to_dict("records")
    if keep == "last":
        return history[-1] if history else None
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
        FormatError: a localizer checkpoint of another format (:func:`check_format`).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError("not-a-checkpoint", f"a folder, not a checkpoint file: give one inside it, e.g. "
                              f"{path / 'checkpoints' / 'best.pt'}", path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch advises weights_only=False (code could run): not quoted
        if "global" in str(exc).lower():  # a class or function to import: what only an unsafe load would build
            raise CheckpointError("not-a-checkpoint", "cannot be loaded safely as a localizer checkpoint: it holds "
                                  "objects other than tensors, numbers, strings, lists and dicts", path) from None
        raise CheckpointError("not-a-checkpoint", "cannot be loaded safely as a localizer checkpoint: not a PyTorch "
                              "file (its bytes are no pickle of tensors)", path) from None
    except Exception as exc:  # noqa: BLE001 - zip and pickle format errors alike: not a PyTorch file
        raise CheckpointError("not-a-checkpoint", "cannot be loaded safely as a localizer checkpoint: not a "
                              f"PyTorch file ({type(exc).__name__}: {first_line(exc, 200)})", path) from None
    missing = [k for k in CHECKPOINT_KEYS if k not in checkpoint] if isinstance(checkpoint, dict) else CHECKPOINT_KEYS
    if missing:
        raise CheckpointError("not-a-checkpoint", f"not a localizer checkpoint (no {', '.join(missing)})", path)
    check_format(checkpoint.get("format_version"), path)
    return checkpoint


def inference_numerics(checkpoint: dict, device: torch.device) -> Numerics:
    """Evaluation and prediction compute as the training did (its validation scores were measured
    so): bf16 when the checkpoint was trained in bf16 and ``device`` has native bf16, else float32."""
    used = checkpoint["precision_used"]
    return default_numerics(device, "bf16" if used == "bf16" and native_bf16(device) else "fp32")


def load_model(checkpoint_path: Path | str, device: str | torch.device = "cpu"):
    """Load a trained model from a checkpoint (safely: see :func:`load_checkpoint`).

    Returns:
        ``(model, info)``: the model in eval mode on ``device``, and a dict with ``config``
        (:class:`~localizer.recipe.TrainConfig`), ``epoch``,
        ``history``, ``train_mean_box`` (the mean normalized xyxy training box), ``numerics``
        (:func:`inference_numerics`: pass it to ``predict_batch``) and ``precision_used`` (the training's format,
        ``fp32`` or ``bf16``).

    Raises:
        FileNotFoundError: no such checkpoint.
        CheckpointError: the file is not a localizer checkpoint (the message names the file).
        FormatError: a checkpoint of another format (:func:`check_format`).
    """
    path = Path(checkpoint_path)
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
    info = {"config": config, "epoch": checkpoint["epoch"], "history": checkpoint["history"],
            "train_mean_box": checkpoint["train_mean_box"], "numerics": numerics,
            "precision_used": checkpoint["precision_used"]}
    return model, info
