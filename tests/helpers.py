"""Helpers shared by the tests."""

from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from localizer.data.validation import scan_dataset
from localizer.recipe import RUNTIME_FIELDS, TrainConfig
from localizer.engine.run import Run
from localizer.engine.training import train


def fit(config: TrainConfig, folder: Path, resume: bool | str = False, overwrite: bool = False, progress: bool = False,
        max_epochs: int | None = None):
    """Train ``config`` in ``folder`` as notebooks 02 and 03 do (``Run.create``, then ``train``), or
    continue it as ``train --resume`` does (``Run.open`` with this config's runtime fields)."""
    if resume is True:
        run = Run.open(folder, **{k: v for k, v in asdict(config).items() if k in RUNTIME_FIELDS})
    else:
        run = Run.create(config, folder, overwrite=overwrite, progress=progress)
    return train(run, resume=resume, overwrite=overwrite, progress=progress, max_epochs=max_epochs)


def noise_image(width: int = 100, height: int = 50, seed: int = 0) -> Image.Image:
    """A seeded RGB noise photo of ``width`` x ``height`` px (distinct photos: no near-duplicates)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def scan(root: Path, **kwargs):
    """``scan_dataset`` without progress bars, on one thread (the reports' order is the files')."""
    return scan_dataset(root, progress=False, workers=1, **kwargs)


def report_row(result, file: str) -> dict:
    """The one report row of ``file`` in a scan ``result`` (fails, listing every row's reason, otherwise)."""
    rows = result.report[result.report["file"] == file]
    assert len(rows) == 1, f"{file} not reported once: {result.report[['file', 'reason']].to_dict('records')}"
    return rows.iloc[0].to_dict()


def write(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, making its folders; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def box(result, file: str) -> tuple[float, ...]:
    """The xyxy pixel box a scan ``result`` found for ``file`` (failing with the report's reason when unusable)."""
    rows = result.table[result.table["file"] == file]
    assert len(rows) == 1, f"{file} not usable: {report_row(result, file)['reason']}"
    return tuple(float(rows.iloc[0][k]) for k in ("xmin", "ymin", "xmax", "ymax"))
