"""Training throughput, side by side in one run: plain pipeline, localizer's float32 pipeline of
before, localizer's pipeline, and the model alone in its fastest number format (the ceiling).

Same machine, model, batch size and image size for all:

* ``plain``: what a course report writes — a Dataset that decodes the JPEG with PIL and applies
  torchvision transforms (resize, flip, ColorJitter, ToDtype, Normalize) per item, a DataLoader
  with workers, float32, contiguous memory, every epoch.
* ``fp32_before``: localizer's pipeline in float32 and contiguous memory, as it ran on CPUs before
  ``precision`` existed.
* ``ours``: localizer's pipeline as :func:`localizer.engine.training.train` runs it — decode-once memmap
  cache, uint8 batches, flip + ColorJitter on whole batches on the device
  (:class:`localizer.data.batch_augment.BatchAugment`), normalization in the model, and the numerics
  ``precision=auto`` chooses (:func:`localizer.engine.numerics.choose_numerics`: channels_last, and bf16
  where it is faster).
* ``ceiling``: forward + backward + optimizer step on a batch already on the device, in each of
  float32 / bf16 autocast x contiguous / channels_last; the fastest of the four is *the* ceiling, so
  ``ours / ceiling`` measures the whole pipeline against what the hardware can do.

Prediction likewise: ``predict`` is ``predict_batch`` on cached uint8 batches with ours' numerics,
``predict_ceiling`` the fastest of the four formats on a batch already on the device (prediction
keeps the number format of training, so ``predict_over_ceiling_same_format`` compares it with the
model alone in that format too). Prints a table and the ratios, and writes them as JSON.

    python benchmarks/throughput.py --data ../shared/data/lion --backbone resnet18 --image-size 256
"""

from __future__ import annotations

import argparse
import copy
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

from localizer.data.batch_augment import BatchAugment
from localizer.data.download import ensure_data
from localizer.data.imageio import load_rgb
from localizer.engine.inference import predict_batch
from localizer.model.losses import box_loss
from localizer.model.models import build_model
from localizer.engine.numerics import Numerics, choose_numerics, resolve_device
from localizer.recipe import TrainConfig
from localizer.data.scans import scan_for
from localizer.engine.manifests import make_manifest
from localizer.engine.training import make_loaders, run_epoch
from localizer.data.transforms import boxes_to_target, build_transforms, pixel_boxes


class PlainDataset(Dataset):
    """Decode + transform per item, every epoch (the baseline being measured, not a product path)."""

    def __init__(self, table: pd.DataFrame, image_size: int):
        self.rows = table.reset_index(drop=True)
        self.transform = build_transforms(image_size, train=True)  # [0, 1]: the model normalizes

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


def save_result(result: dict, out_dir: Path, name: str) -> Path:
    """Write ``result`` as indented JSON to ``out_dir/name.json`` (the folder is made) and say where."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written: {out}")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset folder (default: localizer.data.download.default_data)")
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
        torch.backends.cudnn.benchmark = True  # as fit() sets it, for all methods alike
    config = TrainConfig(data=ensure_data(args.data), image_size=args.image_size, batch_size=args.batch_size,
                         backbone=args.backbone, weights=None, device=str(device))
    manifest = make_manifest(config, scan_for(config.data, progress=False))
    torch.manual_seed(0)
    base = build_model(args.backbone, weights=None).to(device)
    n = args.steps
    ours_numerics, why = choose_numerics("auto", device, base, args.image_size)
    formats = {f"{'bf16' if bf16 else 'fp32'}_{'channels_last' if cl else 'contiguous'}": Numerics(device, bf16, cl)
               for bf16 in (False, True) for cl in (False, True)}

    def trainee(numerics):
        """A copy of the model laid out as ``numerics`` says, with an optimizer of its own (one model
        switched between layouts would mix layouts in its optimizer state and slow down)."""
        model = numerics.place_model(copy.deepcopy(base))
        return model, torch.optim.AdamW(model.parameters(), lr=1e-4)

    # ours and fp32_before: exactly fit()'s loaders and training step (cache built before timing,
    # as after a first run), in two number formats
    train_loader, _ = make_loaders(config, manifest, device, progress=False)
    batches = forever(train_loader)
    augment = BatchAugment()

    def pipeline(numerics):
        model, optimizer = trainee(numerics)

        def run(n: int) -> None:  # n batches in one run_epoch call, as fit() runs them
            run_epoch(model, itertools.islice(batches, n), numerics, optimizer,
                      progress=False, augment=augment)
        return run

    # ceiling: one batch already on the device, same loss, in each number format
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    targets = torch.rand(args.batch_size, 4, device=device).sort(dim=1).values

    def model_only(numerics, train=True):
        x = numerics.place_images(images)
        model, optimizer = trainee(numerics)

        def step():
            model.train(train)
            with torch.set_grad_enabled(train), numerics.autocast():
                out = model(x).float()
            if train:
                loss = box_loss(config.loss, out, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        def run(n: int) -> None:
            for _ in range(n):
                step()
        return run

    # plain: per-item decode + transforms in DataLoader workers, float32, channels-first
    plain_set = PlainDataset(manifest[manifest["split"] == "train"], args.image_size)
    plain_loader = DataLoader(plain_set, batch_size=args.batch_size, shuffle=True, num_workers=args.plain_workers,
                              persistent_workers=args.plain_workers > 0)
    plain_batches = forever(plain_loader)
    plain_model, plain_optimizer = trainee(formats["fp32_contiguous"])

    def plain_step():
        plain_model.train()
        x, y = next(plain_batches)
        loss = box_loss(config.loss, plain_model(x.to(device).contiguous()), y.to(device))
        plain_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        plain_optimizer.step()

    def plain_run(n: int) -> None:
        for _ in range(n):
            plain_step()

    runs = {"plain": plain_run, "fp32_before": pipeline(formats["fp32_contiguous"]), "ours": pipeline(ours_numerics)}
    runs |= {f"ceiling_{name}": model_only(numerics) for name, numerics in formats.items()}
    speeds = interleaved(runs, args.rounds, n, args.warmup, args.batch_size, device)
    ceiling_name = max(formats, key=lambda name: speeds[f"ceiling_{name}"])
    speeds["ceiling"] = speeds[f"ceiling_{ceiling_name}"]

    # prediction on cached uint8 batches, against the model alone in eval mode in each format
    batch_u8 = next(iter(train_loader))[0]

    predictor = trainee(ours_numerics)[0].eval()

    def predict_run(n: int) -> None:
        for _ in range(n):
            predict_batch(predictor, batch_u8, numerics=ours_numerics)

    predict_runs = {"predict": predict_run}
    predict_runs |= {f"predict_ceiling_{name}": model_only(numerics, train=False) for name, numerics in formats.items()}
    speeds |= interleaved(predict_runs, args.rounds, n, 1, args.batch_size, device)
    predict_ceiling_name = max(formats, key=lambda name: speeds[f"predict_ceiling_{name}"])
    ours_format = next(name for name, numerics in formats.items() if numerics == ours_numerics)
    speeds["predict_ceiling"] = speeds[f"predict_ceiling_{predict_ceiling_name}"]

    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(),
        "backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size, "steps": n,
        "rounds": args.rounds, "ours_numerics": str(ours_numerics), "ours_numerics_why": why,
        "ceiling_format": ceiling_name, "predict_ceiling_format": predict_ceiling_name, "images_per_s": speeds,
        "ours_over_ceiling": speeds["ours"] / speeds["ceiling"],
        "ours_over_fp32_before": speeds["ours"] / speeds["fp32_before"],
        "ours_over_plain": speeds["ours"] / speeds["plain"],
        "predict_over_ceiling": speeds["predict"] / speeds["predict_ceiling"],
        # prediction keeps training's number format (see localizer.engine.numerics): its own ceiling
        "predict_over_ceiling_same_format": speeds["predict"] / speeds[f"predict_ceiling_{ours_format}"],
    }
    print(f"{result['device']} | {args.backbone} {args.image_size}px batch {args.batch_size} | {result['machine']}")
    print(f"ours: {ours_numerics} ({why})")
    print(pd.Series(speeds, name="images/s").round(1).to_string())
    print(f"ceiling = {ceiling_name}, predict ceiling = {predict_ceiling_name}")
    for key in ("ours_over_ceiling", "ours_over_fp32_before", "ours_over_plain", "predict_over_ceiling",
                "predict_over_ceiling_same_format"):
        print(f"{key:32s} {result[key]:.2f}x")
    save_result(result, args.out, f"throughput_{device.type}_{args.backbone}_{args.image_size}px_b{args.batch_size}")
    return result


if __name__ == "__main__":
    main()
