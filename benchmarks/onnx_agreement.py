"""An exported model against its checkpoint on the run's test photos: the largest difference of the boxes
(normalized: pixels over the photo's width or height) and of the confidences, without and with flip TTA, both
run through ``predict``'s one path (:func:`localizer.engine.prediction.predict_files`).

    python -m localizer export --checkpoint RUN/checkpoints/best.pt
    python benchmarks/onnx_agreement.py RUN
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from localizer.engine.checkpoints import load_model
from localizer.engine.onnx_model import OnnxLocalizer
from localizer.engine.prediction import predict_files

BOX = ["xmin", "ymin", "xmax", "ymax"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a trained run folder")
    parser.add_argument("--onnx", type=Path, help="the exported model (default RUN/checkpoints/best.onnx)")
    args = parser.parse_args()
    manifest = pd.read_csv(args.run / "manifest.csv")
    files = manifest.loc[manifest["split"] == "test", "path"].tolist()
    model, info = load_model(args.run / "checkpoints" / "best.pt")
    exported = OnnxLocalizer(args.onnx or args.run / "checkpoints" / "best.onnx")
    size = info["config"].image_size
    for tta in (False, True):
        torch_rows = predict_files(model, files, size, tta=tta, progress=False, numerics=info["numerics"])
        onnx_rows = predict_files(exported, files, size, tta=tta, progress=False)
        sides = torch_rows[["width", "height", "width", "height"]].to_numpy()
        boxes = np.abs(torch_rows[BOX].to_numpy() - onnx_rows[BOX].to_numpy()) / sides
        scores = np.abs(torch_rows["confidence"] - onnx_rows["confidence"])
        print(f"{args.run} ({info['config'].backbone}, {info['config'].head} head), tta={tta}: {len(files)} test "
              f"photos, largest difference: boxes {boxes.max():.1e} of the side, confidence {scores.max():.1e}")


if __name__ == "__main__":
    main()
