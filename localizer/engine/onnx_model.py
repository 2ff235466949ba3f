"""An exported localizer (:mod:`localizer.engine.export`) run by onnxruntime: the box source of
``predict --checkpoint MODEL.onnx``, beside a PyTorch model (:func:`localizer.engine.prediction.predict_files`).

The photos are prepared as for PyTorch (the same decode and resize); the uint8 batch is made float here as
:func:`localizer.engine.numerics.model_input` makes it (``x * (1 / 255)`` in float32), and the graph does the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from localizer.engine.export import INPUT_NAME, OUTPUTS, session, sidecar_path
from localizer.errors import DataError

ONNX_SUFFIX = ".onnx"


def is_onnx(path: Path | str) -> bool:
    """True for a file that ``predict`` runs with onnxruntime (its name ends in ``.onnx``)."""
    return Path(path).suffix.lower() == ONNX_SUFFIX


class OnnxLocalizer:
    """An exported model and its description (``MODEL.onnx.json``, :func:`localizer.engine.export.sidecar`).

    Attributes:
        path: the ONNX file.
        description: the sidecar's dict (``image_size``, ``tta``, ``class_name``, ``flag_threshold``, ...).

    Raises:
        localizer.errors.DataError: ``no-description``: no readable sidecar beside the file;
            ``not-exportable`` / ``no-onnxruntime``: as :func:`localizer.engine.export.session`.
    """

    def __init__(self, path: Path | str, threads: int = 0):
        self.path = Path(path)
        self.description = self.describe(self.path)
        self.session = session(self.path, threads)

    @staticmethod
    def describe(path: Path | str) -> dict:
        """The description of the exported model ``path`` (its sidecar JSON), checked to describe this package's
        outputs.

        Raises:
            FileNotFoundError: no file ``path``.
            localizer.errors.DataError: ``no-description``: no readable sidecar, or one of other outputs.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model {path} does not exist")
        described = sidecar_path(path)
        try:
            description = json.loads(described.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError("no-description", f"needs its description {described.name} beside it, as "
                            f"python -m localizer export writes it ({type(exc).__name__})", path) from None
        if not isinstance(description, dict) or list(description.get("outputs", {})) != list(OUTPUTS):
            raise DataError("no-description", f"{described.name} describes other outputs than "
                            f"{', '.join(OUTPUTS)}: export the model again", path)
        return description

    @property
    def image_size(self) -> int:
        """The input side ``S`` in pixels (the run's ``image_size``)."""
        return int(self.description["image_size"])

    def boxes_and_confidence(self, images: torch.Tensor, tta: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes (N, 4) normalized xyxy, confidence (N,))``, float32 tensors, of uint8 images ``(N, 3, S, S)``:
        the ``boxes_tta`` output with ``tta``, else ``boxes``."""
        x = np.asarray(images, dtype=np.float32) * np.float32(1.0 / 255)
        boxes, boxes_tta, confidence = self.session.run(None, {INPUT_NAME: np.ascontiguousarray(x)})
        return torch.from_numpy(boxes_tta if tta else boxes), torch.from_numpy(confidence)
