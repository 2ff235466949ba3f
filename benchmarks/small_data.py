"""Seconds per optimizer update of the small-data recipes, side by side in one run, on one batch of photos.

For each backbone prefix frozen (``freeze_stride`` 0, 4, 8, 16: :class:`localizer.model.models.BoxRegressor`), the
time of an update as training runs it (batch augmentation, forward, backward, AdamW step), the time it would take
from the frozen layers' features computed beforehand (a bank of augmented views, docs/ablations.md rows 45-46, not
kept), and the frozen layers' forward pass per batch (what such a bank costs once per view). The model is
``small``'s (its backbone, head, loss and size), in the numbers ``precision=auto`` gives it on this machine; the
median of 6 updates after 2 warm-up ones. Prints a table with each row's time over ``freeze_stride=0`` online
(``small`` as it is), and writes it as JSON.

    python benchmarks/small_data.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from localizer.data.batch_augment import BatchAugment
from localizer.engine.numerics import choose_numerics, model_input
from localizer.model.models import build_model
from localizer.recipe import recipe_for


def _median_seconds(step, repeats: int = 6, warmup: int = 2) -> float:
    times = []
    for _ in range(warmup + repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(pd.Series(times[warmup:]).median())


def measure(freeze_stride: int, batch: int, profile: str = "small") -> dict:
    """One row: ``online``, ``from_features`` (s per update) and ``frozen_forward`` (s per batch)."""
    config = recipe_for(profile, freeze_stride=freeze_stride)
    model = build_model(config.backbone, weights=None, dropout=config.dropout, head=config.head,
                        image_size=config.image_size, loss=config.loss, dfl=config.dfl, freeze_stride=freeze_stride)
    numerics, _ = choose_numerics(config.precision, torch.device("cpu"), model, config.image_size)
    numerics.place_model(model).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    images = torch.randint(0, 256, (batch, 3, config.image_size, config.image_size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([[[0.2, 0.2, 0.7, 0.8]]]).repeat(batch, 1, 1)
    augment = BatchAugment(affine_p=config.affine_p)

    def update(x, y, from_frozen=False):
        with numerics.autocast():
            loss, _ = model.loss(x, y, from_frozen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def online():
        x, y = augment(images, targets)
        update(model_input(x, numerics), y)

    features = numerics.place_images(model.frozen_features(model_input(images, numerics)))
    row = {"freeze_stride": freeze_stride, "online": _median_seconds(online)}
    if freeze_stride:
        row["from_features"] = _median_seconds(lambda: update(features, targets, True))
        row["frozen_forward"] = _median_seconds(lambda: model.frozen_features(model_input(images, numerics)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    table = pd.DataFrame([measure(s, args.batch) for s in (0, 4, 8, 16)]).set_index("freeze_stride")
    base = table.loc[0, "online"]
    table["online_vs_small"] = table["online"] / base
    table["from_features_vs_small"] = table["from_features"] / base
    print(table.round(3).to_string())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"small_data_cpu_b{args.batch}.json"
    machine = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    path.write_text(json.dumps({**machine,
                                "table": json.loads(table.reset_index().to_json(orient="records"))}, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
