"""Predict the primary-animal box of new photos with a trained checkpoint.

Each file is decoded with :func:`localizer.data.imageio.load_rgb` (EXIF-oriented RGB), resized as in
training, and its box is returned in pixel xyxy of the oriented original image. A file that cannot
be read gets a row with its error reason; prediction never stops at a bad file. No output may
replace an input: :func:`refuse_overwriting_inputs` (called by :func:`predict_files` for the drawings)
refuses a drawing or a table whose path is one of the photos, however the path is spelt. Each box has
its confidence (:func:`localizer.engine.inference.box_confidence`), and a photo whose confidence is below a
given threshold is flagged for a person to check.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import ImageDraw, ImageFont
from torchvision.transforms.v2 import functional as F
from torchvision.utils import draw_bounding_boxes

from localizer.boxes import denormalize_boxes
from localizer.data.imageio import IMAGE_EXTENSIONS, ImageLoadError, is_image_file, load_rgb
from localizer.data.writers import relative_paths
from localizer.engine.inference import predict_batch
from localizer.engine.onnx_model import OnnxLocalizer
from localizer.progress import progress_bar
from localizer.data.transforms import resize_image
from localizer.errors import DataError
from localizer.files import Inputs, save_image

PREDICTION_COLUMNS = ["file", "xmin", "ymin", "xmax", "ymax", "confidence", "width", "height", "error"]
#: The column :func:`predict_files` adds when given a threshold: True for a photo to check.
FLAG_COLUMN = "flagged"


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files and folders -> a list of files, each once (folders: their image files, recursively,
    sorted; a file named twice, or also found in a named folder, keeps its first place).

    Raises:
        localizer.errors.DataError: ``no-image``: no image file was named or found; the message names
            what was passed over (:func:`passed_over`).
    """
    files: list[Path] = []
    for entry in map(Path, inputs):
        if entry.is_dir():
            files += sorted(p for p in entry.rglob("*") if p.is_file() and is_image_file(p))
        else:
            files.append(entry)
    if not files:
        skipped = passed_over(inputs)
        raise DataError("no-image", f"no image file in {', '.join(map(str, inputs))}" + (
            f"; passed over {skipped} (image endings read: {', '.join(sorted(IMAGE_EXTENSIONS))})" if skipped else
            " (the folders are empty)"))
    unique = {os.path.abspath(f): f for f in reversed(files)}  # the first occurrence wins
    return [unique[key] for key in dict.fromkeys(os.path.abspath(f) for f in files)]


def passed_over(inputs: list[str | Path], shown: int = 5) -> str:
    """The files in the folders of ``inputs`` that are no image (a video, a text file), for messages:
    their count and the first ``shown`` names, e.g. ``2 files that are no image: clip.mp4, notes.txt``;
    ``""`` when there is none."""
    others = sorted(p for entry in map(Path, inputs) if entry.is_dir() for p in entry.rglob("*")
                    if p.is_file() and not is_image_file(p))
    names = ", ".join(p.name for p in others[:shown]) + (", ..." if len(others) > shown else "")
    return f"{len(others)} file{'s' * (len(others) != 1)} that {'are' if len(others) != 1 else 'is'} no image: " \
           f"{names}" if others else ""


def drawing_paths(files: list[Path], draw_dir: Path | str) -> dict[str, Path]:
    """Where :func:`predict_files` saves each file's drawing: ``draw_dir`` mirrors the files' paths
    relative to their common folder, with the file's own name, so that ``a/x.jpg`` and ``b/x.jpg``
    get ``draw_dir/a/x.jpg`` and ``draw_dir/b/x.jpg`` (written in the format their suffix names; a file
    without an image suffix gets ``.png`` added). Keys are ``str(file)``."""
    paths = {}
    for file, relative in relative_paths(files).items():
        if not is_image_file(relative):
            relative = relative.with_name(relative.name + ".png")
        paths[file] = Path(draw_dir) / relative
    return paths


def refuse_overwriting_inputs(files: list[str | Path], draw_dir: Path | str | None = None,
                              out: Path | str | None = None) -> None:
    """Refuse outputs that would replace one of the input ``files``: a drawing
    (:func:`drawing_paths` in ``draw_dir``) or the predictions table ``out``.

    Paths are compared resolved (symlinks and ``..`` followed, so ``--draw photos/../photos`` or a
    link to the photos' folder is caught) and, for outputs that exist, by file identity (a hard link).

    Raises:
        localizer.errors.DataError: ``would-overwrite-input``, naming the input and the option.
    """
    files = list(map(Path, files))
    inputs = Inputs(files)
    outputs = [("--draw", p) for p in drawing_paths(files, draw_dir).values()] if draw_dir is not None else []
    outputs += [("--out", Path(out))] if out is not None else []
    for option, output in outputs:
        photo = inputs.written_over(output)
        if photo is not None:
            what = "its drawing" if option == "--draw" else "the predictions table"
            raise DataError("would-overwrite-input", f"{what} ({option} {output}) would be written over this "
                            f"photo, one of the inputs; choose a {option} outside the photos", photo)


def predict_files(
    model,
    files: list[str | Path],
    image_size: int,
    tta: bool = False,
    batch_size: int = 32,
    draw_dir: Path | str | None = None,
    progress: bool = True,
    numerics=None,
    flag_below: float | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Predict one box per image file.

    Args:
        model: a trained :class:`localizer.model.models.BoxRegressor` (eval mode), or an exported model run by
            onnxruntime (:class:`localizer.engine.onnx_model.OnnxLocalizer`; ``numerics`` is then not used).
        files: image paths.
        image_size: the training input size (square side, pixels).
        tta: horizontal-flip test-time augmentation.
        numerics: how the model computes (``info["numerics"]`` of
            :func:`localizer.engine.checkpoints.load_model`: as in training); default float32.
        draw_dir: if given, save each image with its predicted box drawn (red) there, its confidence
            written above it, at the path :func:`drawing_paths` gives (the inputs' relative paths
            mirrored: no two inputs share a drawing).
        flag_below: photos whose confidence is below it are ``flagged`` (and "check" on their drawing).
        overwrite: replace drawings that exist (never a photo of ``files``).

    Returns:
        DataFrame with :data:`PREDICTION_COLUMNS`: pixel xyxy in the EXIF-oriented original image,
        the ``confidence`` in [0, 1], its ``width``/``height``, and ``error`` (``reason: detail``; empty
        when the prediction is valid); with ``flag_below``, :data:`FLAG_COLUMN` too (boolean, missing for
        a file that could not be read).

    Raises:
        localizer.errors.DataError: a drawing would replace one of ``files``
            (:func:`refuse_overwriting_inputs`), before anything is written.
        FileExistsError: a drawing exists and ``overwrite`` is False.
    """
    files = list(map(Path, files))
    drawings = {}
    if draw_dir is not None:
        refuse_overwriting_inputs(files, draw_dir)
        drawings = drawing_paths(files, draw_dir)
    rows: list[dict] = []
    batch: list[tuple[Path, torch.Tensor, tuple[int, int], torch.Tensor | None]] = []
    for index, path in enumerate(progress_bar(files, show=progress, desc="predict", unit="img")):
        try:
            with load_rgb(path) as img:
                original = F.pil_to_tensor(img) if draw_dir is not None else None
                batch.append((path, F.pil_to_tensor(resize_image(img, image_size)), img.size, original))
        except ImageLoadError as exc:
            rows.append({"file": str(path), "error": f"{exc.reason}: {exc.detail}"})
        if len(batch) == batch_size or (batch and index == len(files) - 1):
            rows += _predict_batch_rows(model, batch, tta, numerics, drawings, flag_below, overwrite)
            batch.clear()
    return _prediction_table(rows, files, flag_below)


def _prediction_table(rows: list[dict], files: list[Path], flag_below: float | None) -> pd.DataFrame:
    """:func:`predict_files`'s table of ``rows``, in the order of ``files``, flagged below ``flag_below``."""
    table = pd.DataFrame(rows, columns=PREDICTION_COLUMNS).astype({"width": "Int64", "height": "Int64"})
    if flag_below is not None:
        table[FLAG_COLUMN] = (table["confidence"] < flag_below).astype("boolean").mask(table["confidence"].isna())
    order = {str(p): i for i, p in enumerate(files)}
    return table.sort_values("file", key=lambda s: s.map(order), ignore_index=True)


def _predict_batch_rows(model, batch, tta, numerics, drawings: dict[str, Path], flag_below: float | None,
                        overwrite: bool) -> list[dict]:
    """Rows of :func:`predict_files` for a batch of ``(path, resized uint8 (3, S, S), (width, height),
    original or None)``; each original is drawn at ``drawings[str(path)]`` (replacing a drawing there
    only with ``overwrite``)."""
    images = torch.stack([b[1] for b in batch])
    if isinstance(model, OnnxLocalizer):
        preds, scores = model.boxes_and_confidence(images, tta)
    else:
        preds, scores = predict_batch(model, images, tta, numerics, confidence=True)
    rows = []
    for (path, _, (width, height), original), pred, score in zip(batch, preds.numpy(), scores.tolist(), strict=True):
        box = denormalize_boxes(pred, width, height)
        rows.append({"file": str(path), "xmin": box[0], "ymin": box[1], "xmax": box[2], "ymax": box[3],
                     "confidence": score, "width": width, "height": height, "error": ""})
        if original is not None:
            label = f"confidence {score:.2f}" + (", check" if flag_below is not None and score < flag_below else "")
            _draw(original, box, label, drawings[str(path)], overwrite)
    return rows


def _draw(image: torch.Tensor, box: np.ndarray, label: str, out: Path, overwrite: bool) -> None:
    """Save ``image`` ``(3, H, W)`` uint8 with ``box`` (pixel xyxy) in red and ``label`` in white on red at
    its top left corner (inside the photo), in a font 1/30 of the photo's longer side high."""
    side = max(image.shape[1:])
    width = max(2, round(side / 200))
    drawn = F.to_pil_image(draw_bounding_boxes(image, torch.tensor(box, dtype=torch.float32)[None], colors="red",
                                               width=width))
    font = ImageFont.load_default(size=max(10, round(side / 30)))
    draw = ImageDraw.Draw(drawn)
    x, y = min(max(box[0], 0), drawn.width - 1), min(max(box[1], 0), drawn.height - 1)
    y = max(y - (draw.textbbox((x, y), label, font=font)[3] - y), 0)  # above the box, else at the photo's top
    left, top, right, bottom = draw.textbbox((x, y), label, font=font)
    draw.rectangle((left - width, top - width, right + width, bottom + width), fill="red")
    draw.text((x, y), label, fill="white", font=font)
    save_image(drawn, out, replace=overwrite, quality=95)  # quality: JPEG only
