"""What the validation-split experiments share (``edge_decoding.py``, ``tta_fusion.py``, ``largest_rule.py``,
``scale_tta.py``, ``confidence_estimates.py``): the run folder of their command line, a finished run's best
model with the photos of its validation split, its outputs on them as they are and mirrored, and their score
table. Imported by the scripts of this folder (run as
``python experiments/NAME.py``, which puts this folder on ``sys.path``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from localizer.data.cache import ImageCache
from localizer.data.datasets import CachedBoxDataset, make_loader, normalized_targets
from localizer.report.tables import MEASUREMENT_MIN_IMAGES
from localizer.metrics import accuracy_at, paired_iou, sanitize_boxes
from localizer.engine.checkpoints import load_model
from localizer.engine.numerics import model_input


def validation_split(run: Path) -> tuple:
    """``(model, info, rows, dataset, targets, several)`` of a finished run folder: its ``best.pt`` as
    :func:`localizer.engine.checkpoints.load_model` gives it, the validation rows of its manifest, their cached
    dataset, their boxes ``(N, 4)`` normalized xyxy and a ``(N,)`` bool mask of the photos with several
    animals."""
    model, info = load_model(run / "checkpoints" / "best.pt")
    manifest = pd.read_csv(run / "manifest.csv")
    rows = manifest[manifest["split"] == "val"].reset_index(drop=True)
    dataset = CachedBoxDataset(rows, ImageCache(info["config"].cache_dir, info["config"].image_size), progress=False)
    targets = torch.from_numpy(normalized_targets(rows)).float()
    several = torch.from_numpy(rows["n_boxes"].to_numpy() > 1)
    return model, info, rows, dataset, targets, several


def validation_run(doc: str, heads: tuple[str, ...] | None = None) -> tuple[Path, tuple]:
    """``(run folder, its validation_split)`` of an experiment's command line, ``python experiments/NAME.py RUN``
    (the first line of ``doc``, the script's docstring, describes it); a usage error (exit 2) for a run of
    another head than ``heads`` (None: any head)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    what = f" of the {' or '.join(heads)} head" if heads else ""
    parser.add_argument("run", type=Path, help=f"a finished run folder{what}")
    run = parser.parse_args().run
    split = validation_split(run)
    head = split[1]["config"].head
    if heads and head not in heads:
        parser.error(f"{run}: needs a run{what} (it has head={head!r})")
    return run, split


@torch.no_grad()
def predict_views(model, info: dict, dataset, outputs: Callable, flipped: bool = True) -> dict[str, tuple]:
    """What ``outputs(model, x)`` (a tensor or a tuple of tensors) gives for every photo of ``dataset``, on
    the photos as they are (``"plain"``) and, with ``flipped``, mirrored (``"flipped"``; the outputs are
    of the mirrored photos: mirror boxes back with :func:`localizer.boxes.hflip_boxes`). ``x`` is a batch
    prepared as evaluation prepares it (in [0, 1], the run's numerics, from ``info`` of
    :func:`validation_split`). Returns ``{view: tuple of float32 tensors, concatenated over the photos}``."""
    numerics = info["numerics"]
    views = {"plain": []} | ({"flipped": []} if flipped else {})
    for images, _ in make_loader(dataset, batch_size=64):
        x = model_input(images, numerics)
        for view, batch in views.items():
            with numerics.autocast():
                out = outputs(model, x if view == "plain" else x.flip(-1))
            batch.append(tuple(t.float() for t in (out if isinstance(out, tuple) else (out,))))
    return {view: tuple(torch.cat(parts) for parts in zip(*batches)) for view, batches in views.items()}


def describe_split(run: Path, rows: pd.DataFrame, several: torch.Tensor, extra: str = "") -> None:
    """Print what is scored, and that a split under 50 photos is a pipeline check only."""
    print(f"{run}: validation split, {len(rows)} photos ({int(several.sum())} with several animals){extra}")
    if len(rows) < MEASUREMENT_MIN_IMAGES:
        print(f"  pipeline check only: fewer than {MEASUREMENT_MIN_IMAGES} photos, one photo moves the accuracy by "
              f"{100 / len(rows):.0f} points")


def score_table(label: str, predictions: dict[str, torch.Tensor], targets: torch.Tensor, several: torch.Tensor
                ) -> pd.DataFrame:
    """Mean IoU and accuracy at IoU > 0.5 (PASCAL VOC criterion), in %, over all photos and over those
    with one and with several animals, one row per entry of ``predictions`` (name -> ``(N, 4)``
    normalized xyxy boxes, sanitized here), indexed by ``label``; groups without photos are left out."""
    table = []
    for name, boxes in predictions.items():
        iou = paired_iou(sanitize_boxes(boxes), targets)
        row = {label: name}
        for group, mask in (("all", torch.ones_like(several)), ("one", ~several), ("several", several)):
            row[f"{group} IoU %"] = round(100 * iou[mask].mean().item(), 2)
            row[f"{group} acc %"] = round(100 * accuracy_at(iou[mask]), 2)
        table.append(row)
    return pd.DataFrame(table).set_index(label).dropna(axis=1)
