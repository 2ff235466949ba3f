"""Training throughput, side by side in one run: plain pipeline vs localizer's vs the model-only ceiling.

Same machine, model, batch size and image size for all three:

* ``plain``: what a course report writes — a Dataset that decodes the JPEG with PIL and applies
  torchvision transforms (resize, flip, ColorJitter, ToDtype, Normalize) per item, a DataLoader
  with workers, float32, every epoch.
* ``ours``: localizer's pipeline as :func:`localizer.training.fit` runs it — decode-once memmap
  cache, uint8 batches, flip + ColorJitter on whole batches on the device
  (:class:`localizer.batch_augment.BatchAugment`), normalization there, bf16 autocast and
  channels_last on CUDA.
* ``ceiling``: forward + backward + optimizer step on a batch already on the device.

Also prediction throughput (``predict_batch`` on cached uint8 batches). Prints a table and the ratios
ours/plain and ours/ceiling, and writes them as JSON.

    python benchmarks/throughput.py --data ../shared/data/lion --backbone resnet18 --image-size 256
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from localizer.batch_augment import BatchAugment
from localizer.download import ensure_data
from localizer.evaluation import predict_batch
from localizer.imageio import load_rgb
from localizer.losses import box_loss
from localizer.models import build_model
from localizer.training import TrainConfig, make_loaders, make_manifest, resolve_device, run_epoch
from localizer.transforms import boxes_to_target, build_transforms, pixel_boxes


class PlainDataset(Dataset):
    """Decode + transform per item, every epoch (the baseline being measured, not a product path)."""

    def __init__(self, table: pd.DataFrame, image_size: int, mean, std):
        self.rows = table.reset_index(drop=True)
        self.transform = build_transforms(image_size, train=True, mean=mean, std=std)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows.iloc[i]
        with load_rgb(row.path) as img:
            boxes = pixel_boxes(torch.tensor([[row.xmin, row.ymin, row.xmax, row.ymax]]), img.height, img.width)
            image, boxes = self.transform(img, boxes)
        return image, boxes_to_target(boxes)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def forever(loader):
    """Batches of ``loader``, epoch after epoch (a new pass each time; ``itertools.cycle`` would
    replay stored batches and skip the loading being measured)."""
    while True:
        yield from loader


def images_per_second(run, n_steps: int, batch_size: int, device) -> float:
    """Images per second of ``run(n_steps)`` (which processes ``n_steps`` batches)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(n_steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n_steps * batch_size / (time.perf_counter() - start)


def interleaved(runs: dict, rounds: int, n_steps: int, warmup: int, batch_size: int, device) -> dict:
    """Median images/s per method over ``rounds`` rounds, the methods taking turns in each round in
    a rotating order (so drift, background load and loader workers refilling their queues touch all
    of them alike). ``runs`` maps a name to ``run(n)``, which processes ``n`` batches."""
    for run in runs.values():
        run(warmup)
    samples = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            samples[name].append(images_per_second(runs[name], n_steps, batch_size, device))
    return {name: float(np.median(values)) for name, values in samples.items()}


def repeat(step):
    """``run(n)`` that calls ``step()`` ``n`` times."""
    def run(n: int) -> None:
        for _ in range(n):
            step()
    return run


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset folder (default: localizer.download.default_data)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="timed batches per method and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; methods take turns, the median is kept")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--plain-workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as fit() sets it, for all three methods alike
    config = TrainConfig(data=ensure_data(args.data), image_size=args.image_size, batch_size=args.batch_size,
                         backbone=args.backbone, weights=None, device=str(device))
    manifest, _ = make_manifest(config, progress=False)
    torch.manual_seed(0)
    model = build_model(args.backbone, weights=None).to(device)
    mean, std = model.input_mean, model.input_std
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n = args.steps

    # ours: exactly fit()'s loaders and training step (cache built before timing, as after a first run)
    train_loader, _ = make_loaders(config, manifest, device, progress=False)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    ours_batches = forever(train_loader)
    augment = BatchAugment()

    def ours_run(n: int) -> None:  # n batches in one run_epoch call, as fit() runs them
        run_epoch(model, itertools.islice(ours_batches, n), config.loss, device, mean, std, optimizer,
                  progress=False, augment=augment)

    # ceiling: one batch already on the device, same loss, autocast and memory format
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    targets = torch.rand(args.batch_size, 4, device=device).sort(dim=1).values
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)

    def ceiling_step():
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = box_loss(config.loss, model(images).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # plain: per-item decode + transforms in DataLoader workers, float32, channels-first
    plain_set = PlainDataset(manifest[manifest["split"] == "train"], args.image_size, mean, std)
    plain_loader = DataLoader(plain_set, batch_size=args.batch_size, shuffle=True, num_workers=args.plain_workers,
                              persistent_workers=args.plain_workers > 0)
    plain_batches = forever(plain_loader)

    def plain_step():
        model.train()
        x, y = next(plain_batches)
        loss = box_loss(config.loss, model(x.to(device).contiguous()), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    speeds = interleaved({"plain": repeat(plain_step), "ours": ours_run, "ceiling": repeat(ceiling_step)},
                         args.rounds, n, args.warmup, args.batch_size, device)

    # prediction on cached uint8 batches
    model.eval()
    batch_u8 = next(iter(train_loader))[0]
    speeds["predict"] = interleaved({"predict": repeat(lambda: predict_batch(model, batch_u8, mean, std))},
                                    args.rounds, n, 1, args.batch_size, device)["predict"]
    plain, ours, ceiling = speeds["plain"], speeds["ours"], speeds["ceiling"]

    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(),
        "backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size, "steps": n,
        "rounds": args.rounds, "images_per_s": speeds,
        "ours_over_plain": ours / plain, "ours_over_ceiling": ours / ceiling,
    }
    print(f"{result['device']} | {args.backbone} {args.image_size}px batch {args.batch_size}")
    print(pd.Series(result["images_per_s"], name="images/s").round(1).to_string())
    print(f"ours/plain   {result['ours_over_plain']:.2f}x")
    print(f"ours/ceiling {result['ours_over_ceiling']:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"throughput_{device.type}_{args.backbone}_{args.image_size}px_b{args.batch_size}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written: {out}")
    return result


if __name__ == "__main__":
    main()
