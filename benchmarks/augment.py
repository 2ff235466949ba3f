"""Batch augmentation on the training device: localizer's BatchAugment against kornia.augmentation.

Both do, per image of a batch with its box: a horizontal flip (p 0.5), ColorJitter (brightness,
contrast and saturation 0.2, no hue) and, with ``--affine-p``, a random scale and shift of the image
and its box (scale 0.75-1.15, shift up to 10 %). kornia: ``AugmentationSequential(RandomHorizontalFlip,
ColorJitter, RandomAffine, data_keys=["input", "bbox_xyxy"])``. Prints images per second (median of
interleaved rounds) and checks that each moves a known box as the pixels move; writes JSON.

    pip install kornia==0.9.0   # not a dependency of localizer: only this comparison needs it
    python benchmarks/augment.py --image-size 160
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from throughput import cpu_name, interleaved, save_result  # benchmarks/ is the script's folder

from localizer.data.batch_augment import AFFINE_SCALE, AFFINE_TRANSLATE, BatchAugment
from localizer.data.transforms import COLOR_JITTER


def kornia_augment(affine_p: float):
    import kornia.augmentation as K

    jitter = {k: v for k, v in COLOR_JITTER.items() if k != "hue"}
    steps = [K.RandomHorizontalFlip(p=0.5), K.ColorJitter(**jitter, hue=0.0, p=1.0)]
    if affine_p:
        steps.append(K.RandomAffine(degrees=0.0, translate=(AFFINE_TRANSLATE, AFFINE_TRANSLATE), scale=AFFINE_SCALE,
                                    p=affine_p))
    sequence = K.AugmentationSequential(*steps, data_keys=["input", "bbox_xyxy"])

    def run(images: torch.Tensor, boxes: torch.Tensor):
        size = images.shape[-1]
        out, moved = sequence(images.float() / 255, boxes[:, None] * size)  # kornia: pixels, (B, N, 4)
        return out, moved[:, 0] / size
    return run


def box_follows_pixels(run, size: int = 96, trials: int = 20) -> float:
    """Largest distance (pixels) between an augmented box and the extent of the white block it marks."""
    worst = 0.0
    for seed in range(trials):
        torch.manual_seed(seed)
        images = torch.zeros(1, 3, size, size, dtype=torch.uint8)
        images[..., 30:60, 20:50] = 255
        boxes = torch.tensor([[20 / size, 30 / size, 50 / size, 60 / size]])
        out, moved = run(images, boxes)
        grey = out[0].mean(0)
        ys, xs = torch.nonzero(grey > grey.max() * 0.75, as_tuple=True)
        block = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        worst = max(worst, float((moved[0] * size - block).abs().max()))
    return worst


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--affine-p", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    runs = {"ours": BatchAugment(affine_p=args.affine_p), "kornia": kornia_augment(args.affine_p)}
    images = torch.randint(0, 256, (args.batch_size, 3, args.image_size, args.image_size), dtype=torch.uint8)
    xs, ys = torch.rand(args.batch_size, 2).sort(dim=1).values, torch.rand(args.batch_size, 2).sort(dim=1).values
    boxes = torch.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], dim=1)
    def timed(run):
        def steps(n: int) -> None:
            for _ in range(n):
                run(images, boxes)
        return steps

    speeds = interleaved({name: timed(run) for name, run in runs.items()}, args.rounds, args.steps, 1,
                         args.batch_size, torch.device("cpu"))
    errors = {name: box_follows_pixels(run) for name, run in runs.items()}
    result = {"machine": f"{cpu_name()}, torch {torch.__version__}",
              "image_size": args.image_size, "batch_size": args.batch_size, "affine_p": args.affine_p,
              "images_per_s": speeds, "ours_over_kornia": speeds["ours"] / speeds["kornia"],
              "box_error_px": errors}
    print(f"batch {args.batch_size} x {args.image_size} px, affine_p {args.affine_p}, on the CPU")
    for name in runs:
        print(f"{name:7s} {speeds[name]:8.0f} images/s   box vs pixels within {errors[name]:.1f} px")
    print(f"ours / kornia {result['ours_over_kornia']:.2f}x")
    save_result(result, args.out, f"augment_cpu_{args.image_size}px_b{args.batch_size}_affine{args.affine_p:g}")
    return result


if __name__ == "__main__":
    main()
