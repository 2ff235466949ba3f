"""``export``: a trained model to ONNX, checked against PyTorch (:mod:`localizer.engine.export`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_export_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="a run's checkpoint, e.g. runs/RUN/checkpoints/best.pt")
    parser.add_argument("--out", type=Path, help="the ONNX file (default: beside the checkpoint, best.onnx); its "
                                                 "description goes beside it as NAME.onnx.json")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing ONNX file and its description")


def cmd_export(args: argparse.Namespace) -> int:
    from localizer.engine.export import export_onnx, sidecar_path

    out = args.out or args.checkpoint.with_suffix(".onnx")
    about = export_onnx(args.checkpoint, out, overwrite=args.overwrite)
    threshold = about["flag_threshold"]
    print(f"exported {args.checkpoint} ({about['backbone']}, {about['head']} head, {about['image_size']} px) to {out}")
    print(f"checked with onnxruntime: largest difference from PyTorch {about['max_abs_difference']:.1e} "
          f"(allowed {about['tolerance']:g}); input float32 (N, 3, {about['image_size']}, {about['image_size']}) "
          f"RGB in [0, 1]; outputs {', '.join(about['outputs'])} (the recipe predicts {about['boxes_output']})")
    print(f"flag threshold: {threshold:.3f}" if threshold is not None else
          "flag threshold: none (no run folder with validation photos to choose it on): predict --flag-below "
          "with this .onnx needs a number")
    print(f"description: {sidecar_path(out)}")
    return 0
