"""Where and in what number format the model runs: the device, bf16 autocast, channels_last.

``precision`` (a recipe value, default ``auto``) chooses the numbers of training, and evaluation and
prediction use what training used:

* ``fp32``: float32 everywhere.
* ``bf16``: :func:`torch.autocast` to bfloat16 (convolutions and matrix products in bf16, the loss,
  the weights and the optimizer in float32), as mixed-precision training does (Micikevicius et al.,
  "Mixed Precision Training", ICLR 2018; bf16 keeps float32's exponent range, so no loss scaling).
* ``auto``: a rule of the device and the model alone, so that the same recipe gets the same
  numerics on the same hardware, however busy the machine is (:func:`choose_numerics`):

  - a CUDA GPU with bf16 (``torch.cuda.is_bf16_supported``: Ampere and newer): bf16, which its
    tensor cores compute natively;
  - a CPU with native bf16 (AVX512-BF16 or AMX, read with ``torch.cpu._is_avx512_bf16_supported`` /
    ``_is_amx_tile_supported``): the format :data:`CPU_PRECISION` gives the model's backbone;
  - a CPU without native bf16: float32, since there bf16 is converted to and from float32 in
    software (native bf16 arrived with Cooper Lake's AVX512-BF16: Ma, Fedyunin and Wei, "Empowering
    PyTorch on Intel Xeon Scalable processors with Bfloat16", PyTorch blog, 2022);
  - Apple MPS: float32 (MPS's bf16 depends on the macOS version, and is not relied on here).

Why a table per backbone on CPUs: the answer depends on the layers (ResNet18 trains faster in bf16,
EfficientNet-Lite, whose depthwise convolutions gain nothing from it, slower), and a fixed table gives
the same numerics on the same hardware whatever the machine's load: docs/numerics.md gives the
measurements (``make benchmark``, ``benchmarks/results/throughput_cpu_*.json``).

**channels_last** (NHWC memory layout) is used on CPUs and CUDA GPUs for every model: oneDNN's and
cuDNN's convolutions are fastest in it (docs/numerics.md).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as F

from localizer.errors import ConfigError

from localizer.recipe import PRECISIONS

#: Training steps in bf16 against float32 on a CPU with native bf16, as measured (docs/numerics.md): ``backbone ->
#: (the backbone measured, speed ratio)``; Lite1 and Lite2, built of the same depthwise blocks, are taken to behave
#: as Lite0.
CPU_BF16_SPEED = {"resnet18": ("resnet18", 2.07), "efficientnet_lite0": ("efficientnet_lite0", 0.79),
                  "efficientnet_lite1": ("efficientnet_lite0", 0.79),
                  "efficientnet_lite2": ("efficientnet_lite0", 0.79)}
#: ``auto`` on a CPU with native bf16: the number format of each backbone (``model.backbone_name``), bf16 where it
#: was measured faster. A backbone not listed (``"custom"``) trains in float32, the format every model runs
#: correctly in.
CPU_PRECISION = {name: "bf16" if speed > 1 else "fp32" for name, (_, speed) in CPU_BF16_SPEED.items()}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` if available, else ``mps``, else ``cpu``; other names as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` computes in bf16 natively: a CUDA GPU with bf16 support, or a CPU with
    AVX512-BF16 or AMX (Intel Cooper Lake / Sapphire Rapids and newer, AMD Zen 4 and newer)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


@dataclass(frozen=True)
class Numerics:
    """How a model runs on a device: ``bf16`` autocast or float32, channels_last or contiguous.

    Attributes:
        device: where the model and the batches are.
        bf16: compute convolutions and matrix products in bfloat16 under :func:`torch.autocast`.
        channels_last: keep images (and the model's weights) in NHWC memory layout.
    """

    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    @property
    def precision(self) -> str:
        """``"bf16"`` or ``"fp32"``: the format as a recipe names it."""
        return "bf16" if self.bf16 else "fp32"

    def __str__(self) -> str:
        layout = " + channels_last" if self.channels_last else ""
        return f"{'bf16 autocast' if self.bf16 else 'float32'}{layout} on {self.device.type}"

    def autocast(self):
        """The autocast context of these numerics (a no-op for float32)."""
        if not self.bf16:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def place_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` to the device, in channels_last layout when set; returns it."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def place_images(self, images: torch.Tensor) -> torch.Tensor:
        """A float ``(N, 3, H, W)`` batch on the device, in channels_last layout when set."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


def default_numerics(device: torch.device, precision: str = "fp32") -> Numerics:
    """Numerics for ``device`` with a fixed ``precision`` (``fp32`` or ``bf16``): channels_last on
    CPUs and CUDA GPUs, not on other devices."""
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision={precision!r}: expected 'fp32' or 'bf16' here ('auto' needs a model)")
    return Numerics(device, bf16=precision == "bf16", channels_last=device.type in ("cpu", "cuda"))


def choose_numerics(precision: str, device: torch.device, model: torch.nn.Module | None = None,
                    image_size: int = 224) -> tuple[Numerics, str]:
    """The numerics for ``precision`` (one of :data:`PRECISIONS`) on ``device``.

    ``auto`` follows the rule of the module docstring: it reads the device and the model's
    ``backbone_name``, never a clock, so the same recipe gets the same numerics on the same hardware.

    Args:
        precision: ``auto``, ``fp32`` or ``bf16`` (see the module docstring).
        device: the training device.
        model: the model to train; ``auto`` on a CPU with native bf16 looks up its ``backbone_name``
            in :data:`CPU_PRECISION` (None, or a name not there: float32).
        image_size: the input side in pixels; not used by the rule (kept for callers).

    Returns:
        ``(numerics, why)``: the choice and one line saying why (printed at the start of training).

    Raises:
        localizer.errors.ConfigError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of {PRECISIONS}")
    if precision != "auto":
        return default_numerics(device, precision), f"precision={precision}"
    if device.type == "mps":
        return default_numerics(device, "fp32"), "auto: float32 on mps (its bf16 depends on the macOS version)"
    if not native_bf16(device):
        return default_numerics(device, "fp32"), f"auto: float32, {device.type} has no native bf16"
    if device.type != "cpu":
        return default_numerics(device, "bf16"), f"auto: bf16, native on this {device.type} device"
    backbone = getattr(model, "backbone_name", None)
    chosen = CPU_PRECISION.get(backbone, "fp32")
    if backbone not in CPU_PRECISION:
        why = f"auto: float32 for backbone {backbone!r} on this CPU (bf16 only for backbones measured faster in it)"
    else:
        measured, speed = CPU_BF16_SPEED[backbone]
        on = "" if measured == backbone else f" for {measured}, whose blocks it shares"
        why = (f"auto: {'bf16' if chosen == 'bf16' else 'float32'} for {backbone} on this CPU with native bf16 "
               f"(training steps measured {speed:.2f}x as fast in bf16{on})")
    return default_numerics(device, chosen), why


def model_input(images: torch.Tensor, numerics: Numerics) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` in [0, 255] (or float in [0, 1]) -> float32 in [0, 1] on ``numerics.device``,
    in its memory layout (channels_last on CPUs and CUDA GPUs): what a model takes (it normalizes itself)."""
    return numerics.place_images(F.to_dtype(images.to(numerics.device, non_blocking=True), torch.float32, scale=True))
