"""Prediction speed, side by side in one run: ``predict`` with PyTorch and with onnxruntime on the same photos.

For each recipe (``quick``, ``best``: their backbone, head, image size and flip TTA, :data:`localizer.recipe.PROFILES`)
the model is built with the recipe's ImageNet backbone and an untrained head (speed does not depend on the head's
weights; a wholly untrained EfficientNet-Lite is no stand-in: its activations shrink to ~1e-9), exported to ONNX as ``python -m localizer export``
exports it (:mod:`localizer.engine.export`, checked against PyTorch) and both run
:func:`localizer.engine.prediction.predict_files` end to end: decode, resize, the three views of the confidence, the
table. PyTorch in the numerics a run trained on this machine would use (``precision=auto``), onnxruntime on the CPU
execution provider; both with ``--threads`` threads. The two take turns over ``--rounds`` rounds (the order rotates);
the median photos per second is kept. Prints a table and writes JSON.

    python benchmarks/predict_speed.py --photos ../shared/data/lion --count 64 --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import cpu_name, save_result  # noqa: E402 (the benchmarks' shared helpers)

from localizer.data.download import ensure_data  # noqa: E402
from localizer.engine.export import OUTPUTS, ExportedLocalizer, _write_onnx, max_difference, probe_images  # noqa: E402
from localizer.engine.numerics import choose_numerics  # noqa: E402
from localizer.engine.onnx_model import OnnxLocalizer  # noqa: E402
from localizer.engine.prediction import expand_inputs, predict_files  # noqa: E402
from localizer.model.models import build_model  # noqa: E402
from localizer.recipe import recipe_for  # noqa: E402


def exported(model, config, folder: Path) -> tuple[OnnxLocalizer, float]:
    """The model exported into ``folder`` (with the description ``predict`` reads) and its measured largest
    difference from PyTorch on the probe batch."""
    module, path = ExportedLocalizer(model), folder / "model.onnx"
    _write_onnx(module, path, probe_images(config.image_size, count=2, seed=1))
    difference = max_difference(path, module, probe_images(config.image_size))
    (folder / "model.onnx.json").write_text(json.dumps({"outputs": OUTPUTS, "image_size": config.image_size,
                                                        "tta": config.tta}))
    return OnnxLocalizer(path, threads=torch.get_num_threads()), difference


def photos_per_second(predict, files: list[Path]) -> float:
    start = time.perf_counter()
    predict(files)
    return len(files) / (time.perf_counter() - start)


def measure(profile: str, files: list[Path], rounds: int, batch_size: int) -> dict:
    """Photos per second of ``predict`` with PyTorch and with onnxruntime for ``profile``'s model (median of
    ``rounds``, turns rotating), and the export's largest difference."""
    config = recipe_for(profile)
    model = build_model(config.backbone, weights=config.weights, dropout=config.dropout, head=config.head,
                        image_size=config.image_size, loss=config.loss, dfl=config.dfl).eval()
    numerics, why = choose_numerics("auto", torch.device("cpu"), model)
    with tempfile.TemporaryDirectory() as folder:
        onnx_model, difference = exported(model, config, Path(folder))
        numerics.place_model(model)
        runs = {"pytorch": lambda f: predict_files(model, f, config.image_size, tta=config.tta, batch_size=batch_size,
                                                   progress=False, numerics=numerics),
                "onnxruntime": lambda f: predict_files(onnx_model, f, config.image_size, tta=config.tta,
                                                       batch_size=batch_size, progress=False)}
        for run in runs.values():  # warm-up: first calls, allocator, thread pools
            run(files[:batch_size])
        samples = {name: [] for name in runs}
        names = list(runs)
        for r in range(rounds):
            for name in names[r % 2:] + names[:r % 2]:
                samples[name].append(photos_per_second(runs[name], files))
    speeds = {name: float(np.median(values)) for name, values in samples.items()}
    return {"backbone": config.backbone, "head": config.head, "image_size": config.image_size, "tta": config.tta,
            "pytorch_numerics": str(numerics), "pytorch_numerics_why": why, "max_abs_difference": difference,
            "photos_per_s": speeds, "onnxruntime_over_pytorch": speeds["onnxruntime"] / speeds["pytorch"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", help="a folder of photos, the first --count timed (default: "
                                             "localizer.data.download.default_data)")
    parser.add_argument("--count", type=int, default=64, help="photos per timed pass")
    parser.add_argument("--profiles", nargs="+", default=["quick", "best"])
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's and onnxruntime's intra-op threads")
    parser.add_argument("--batch-size", type=int, default=32, help="predict's batch size (its default)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the two take turns, the median is kept")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    photos = ensure_data(args.photos)
    files = expand_inputs([photos])[:args.count]
    result = {"machine": f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
              "photos": f"{len(files)} photos of {photos}", "weights": "the recipes' ImageNet backbones, untrained heads (speed only)",
              "rounds": args.rounds, "profiles": {p: measure(p, files, args.rounds, args.batch_size)
                                                  for p in args.profiles}}
    print(f"{'recipe':8} {'model':36} {'PyTorch':>10} {'onnxruntime':>12}  photos/s ({result['machine']})")
    for profile, row in result["profiles"].items():
        model = f"{row['backbone']} {row['head']} {row['image_size']} px{' TTA' if row['tta'] else ''}"
        print(f"{profile:8} {model:36} {row['photos_per_s']['pytorch']:10.1f} {row['photos_per_s']['onnxruntime']:12.1f}"
              f"  (x{row['onnxruntime_over_pytorch']:.2f}; max difference {row['max_abs_difference']:.1e})")
    save_result(result, args.out, f"predict_speed_cpu_{args.threads}threads")
    return result


if __name__ == "__main__":
    main()
