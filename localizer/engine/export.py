"""Export a trained localizer to ONNX, the format every runtime reads, checked against PyTorch before it is kept.

The exported graph (:class:`ExportedLocalizer`) takes float32 images ``(N, 3, S, S)``, RGB in [0, 1], NCHW (``S``
the run's ``image_size``; the model normalizes them itself) and gives what prediction computes, in one graph:
:func:`localizer.engine.inference.boxes_and_confidence`, the one source of the maths (the plain and the flip TTA
boxes, both computed for the confidence anyway, and the confidence). ``NAME.onnx.json`` beside the file says what
it expects and gives (:func:`sidecar`).

Exporter: ``torch.onnx.export``'s TorchScript exporter (``dynamo=False``), opset :data:`OPSET`. The dynamo exporter
(``torch.export``) cannot export the ``largest`` head, whose detections are data-dependent (the cells above the score,
then non-maximum suppression: a count known only when the photo is seen), and its ONNX translation lacks
``amax`` over all dimensions (:func:`localizer.metrics.paired_iou`); tracing records the graph the photo takes, with
ONNX's ``NonZero`` and ``NonMaxSuppression``. One exporter for every head.

Exactness: the written file is run by onnxruntime on a probe batch and compared with PyTorch in float32; a
difference above :data:`TOLERANCE` (normalized units, or confidence) removes what was written and raises
:class:`ExportError`, as does an op the exporter or onnxruntime lacks. A model trained in bf16 is exported in
float32 (the weights are float32; bf16 was autocast only), and so compared.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from localizer.engine.checkpoints import LAST, load_model
from localizer.engine.inference import CONFIDENCE_RULE, TTA_AGREEMENT, boxes_and_confidence
from localizer.errors import DataError, first_line
from localizer.files import atomic_path, check_outputs, write_json

#: The ONNX operator set: 18 has ``ScatterElements`` with max / min reduction (the ``largest`` head's choice).
OPSET = 18
#: The largest difference allowed between onnxruntime's and PyTorch's outputs on the probe batch (boxes in
#: normalized units, confidence in [0, 1]): 1e-4 of the side is 0.02 px of a 200 px photo.
TOLERANCE = 1e-4
INPUT_NAME = "images"
#: The outputs, in order, and what each holds (also written into the sidecar JSON).
OUTPUTS = {
    "boxes": "(N, 4) float32: the box of each photo, normalized xyxy in [0, 1] (x / width, y / height)",
    "boxes_tta": f"(N, 4) float32: the flip TTA box, the mean of the box and the un-mirrored box of the mirrored "
                 f"photo where they overlap with IoU > {TTA_AGREEMENT}, else the box; normalized xyxy",
    "confidence": f"(N,) float32 in [0, 1]: {CONFIDENCE_RULE}",
}
#: What installs the runtime that checks every export and runs ``predict --checkpoint MODEL.onnx``.
INSTALL_HINT = "pip install onnxruntime (it is in requirements.txt: make setup installs it)"


class ExportError(DataError):
    """A model that is not exported: ``no-onnxruntime``, ``not-exportable`` (an op the exporter or onnxruntime
    lacks) or ``not-exact`` (onnxruntime's outputs differ from PyTorch's by more than :data:`TOLERANCE`)."""


class ExportedLocalizer(nn.Module):
    """The graph exported: float images ``(N, 3, S, S)`` RGB in [0, 1] -> ``(boxes, boxes_tta, confidence)``
    (:data:`OUTPUTS`) of :func:`localizer.engine.inference.boxes_and_confidence`, in float32."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.eval()  # torch.onnx.export restores the wrapper's mode on the model: never training's

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return boxes_and_confidence(self.model, images)


def onnxruntime():
    """The ``onnxruntime`` module.

    Raises:
        ExportError: ``no-onnxruntime``, with the one line that installs it.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("no-onnxruntime", f"onnxruntime is not installed: {INSTALL_HINT}") from None
    return ort


def sidecar_path(onnx_path: Path | str) -> Path:
    """Where the description of ``MODEL.onnx`` lies: ``MODEL.onnx.json`` beside it."""
    return Path(onnx_path).with_name(Path(onnx_path).name + ".json")


def probe_images(image_size: int, count: int = 3, seed: int = 0) -> torch.Tensor:
    """The probe batch of the check, ``(count, 3, S, S)`` float32 in [0, 1] as from uint8 photos: seeded noise,
    a horizontal ramp (its mirror differs) and mid grey."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (max(count - 2, 1), 3, image_size, image_size), generator=generator)
    ramp = torch.linspace(0, 255, image_size).round().expand(1, 3, image_size, image_size)
    grey = torch.full((1, 3, image_size, image_size), 128.0)
    return torch.cat([noise.float(), ramp, grey])[:count].div(255)


def session(path: Path | str, threads: int = 0):
    """An onnxruntime CPU session of the ONNX file ``path`` (``threads``: intra-op threads, 0: onnxruntime's
    default, one per core).

    Raises:
        ExportError: ``no-onnxruntime``; ``not-exportable``: onnxruntime cannot load or build the graph.
    """
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 4  # fatal only: errors are raised, with their message
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
        raise ExportError("not-exportable", f"onnxruntime cannot run it: {_first_line(exc)}", path) from None


def max_difference(onnx_path: Path | str, module: nn.Module, images: torch.Tensor) -> float:
    """The largest absolute difference between onnxruntime's outputs and ``module``'s (PyTorch) on ``images``
    ``(N, 3, S, S)`` float32, over every output and element.

    Raises:
        ExportError: ``not-exportable``: onnxruntime cannot run the file.
    """
    runner = session(onnx_path)
    try:
        got = runner.run(None, {INPUT_NAME: images.numpy()})
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
        raise ExportError("not-exportable", f"onnxruntime cannot run it: {_first_line(exc)}", onnx_path) from None
    with torch.no_grad():
        expected = module(images)
    return max(float(np.abs(g - e.numpy()).max(initial=0.0)) for g, e in zip(got, expected, strict=True))


def _first_line(exc: Exception) -> str:
    return first_line(exc, 300) or type(exc).__name__


def _write_onnx(module: nn.Module, path: Path, example: torch.Tensor) -> None:
    """``torch.onnx.export`` of ``module`` into ``path`` (the TorchScript exporter: see the module docstring),
    every dimension 0 dynamic (``N``), the tracer's and the exporter's warnings silenced (the tracer warns of
    each shape read as a number: the recipes' shapes are fixed but for ``N``).

    Raises:
        ExportError: ``not-exportable``: an op the exporter lacks (its message).
    """
    names = [INPUT_NAME, *OUTPUTS]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=list(OUTPUTS),
                              dynamic_axes={name: {0: "N"} for name in names})
    except Exception as exc:  # noqa: BLE001 - torch.onnx raises several error types for one cause
        raise ExportError("not-exportable", f"torch.onnx.export cannot export it: {_first_line(exc)}", path) from None


def export_onnx(checkpoint: Path | str, out: Path | str | None = None, overwrite: bool = False) -> dict:
    """Export the model of ``checkpoint`` to ``out`` (default: ``best.onnx`` beside ``best.pt``) and write its
    description beside it (:func:`sidecar_path`), after checking it (see the module docstring).

    Returns:
        The description written (:func:`sidecar`), with ``max_abs_difference`` measured.

    Raises:
        ExportError: see :class:`ExportError`; nothing is left written.
        localizer.errors.DataError: ``bad-argument``: ``out`` does not end in ``.onnx``.
        FileExistsError, localizer.files.OutputError: as :func:`localizer.files.check_outputs` (the checkpoint is
            an input; an existing file is replaced only with ``overwrite``).
        FileNotFoundError, localizer.engine.checkpoints.CheckpointError: as :func:`load_model`.
    """
    onnxruntime()  # before the work: the check needs it
    checkpoint = Path(checkpoint)
    path = Path(out) if out is not None else checkpoint.with_suffix(".onnx")
    if path.suffix.lower() != ".onnx":
        raise DataError("bad-argument", f"--out {path}: give an .onnx name (predict runs a file so named with "
                                        f"onnxruntime), e.g. --out {path.with_suffix('.onnx')}")
    description = sidecar_path(path)
    check_outputs([("--out", path), ("--out", description)], inputs=[checkpoint, checkpoint.parent / LAST],
                  overwrite=overwrite)
    model, info = load_model(checkpoint, "cpu")
    module = ExportedLocalizer(model.float().to(memory_format=torch.contiguous_format))
    size = info["config"].image_size
    with atomic_path(path, replace=overwrite) as tmp:  # removed unless the block ends without an error
        _write_onnx(module, tmp, probe_images(size, count=2, seed=1))
        difference = max_difference(tmp, module, probe_images(size))  # another batch size than the traced one
        if not difference <= TOLERANCE:
            raise ExportError("not-exact", f"onnxruntime's outputs differ from PyTorch's by {difference:.2g} on a "
                              f"probe batch (allowed: {TOLERANCE:g}); not written", path)
        data = sidecar(checkpoint, info, path.name) | {"max_abs_difference": difference}
    write_json(description, data, replace=overwrite)
    return data


def sidecar(checkpoint: Path, info: dict, name: str) -> dict:
    """The description of an exported model ``name``: its input and outputs (:data:`OUTPUTS`), which boxes the
    run's recipe predicts (``tta``), its recipe's backbone and head, the confidence rule and the flag threshold
    the run chooses on its validation split (:func:`localizer.engine.review.flag_threshold`, chosen now unless
    the run kept it already; None for a checkpoint outside a run folder or a run without validation photos), so
    that ``predict --flag-below`` works with the ``.onnx`` file alone."""
    from localizer.data.writers import class_name
    from localizer.engine.review import flag_threshold
    from localizer.engine.run import Run

    config = info["config"]
    run = Run.of_checkpoint(checkpoint)
    try:
        kept = flag_threshold(run, checkpoint.name, progress=False) if run is not None else None
    except DataError:  # no validation photos to choose it on
        kept = None
    return {
        "model": name, "checkpoint": str(checkpoint), "epoch": info["epoch"],
        "exporter": f"torch.onnx.export (TorchScript exporter, dynamo=False), opset {OPSET}, torch {torch.__version__}",
        "input": {"name": INPUT_NAME, "shape": ["N", 3, config.image_size, config.image_size], "dtype": "float32",
                  "layout": "NCHW", "channels": "RGB", "range": [0.0, 1.0],
                  "preparation": "the EXIF-oriented photo resized to image_size x image_size (bilinear, "
                                 "antialiased; the aspect ratio is not kept), its uint8 values divided by 255; the "
                                 "model normalizes them itself"},
        "outputs": OUTPUTS, "image_size": config.image_size, "tta": config.tta,
        "boxes_output": "boxes_tta" if config.tta else "boxes",
        "backbone": config.backbone, "head": config.head, "profile": run.profile if run is not None else None,
        "precision": "float32", "trained_precision": info["precision_used"],
        "class_name": class_name(config.classes), "confidence_rule": CONFIDENCE_RULE,
        "flag_threshold": kept["threshold"] if kept else None, "flag_rule": kept["rule"] if kept else None,
        "tolerance": TOLERANCE,
    }
