"""Where and in what number format the model runs: the device, bf16 autocast, channels_last.

``precision`` (a recipe value, default ``auto``) chooses the numbers of training, and evaluation and
prediction use what training used:

* ``fp32``: float32 everywhere.
* ``bf16``: :func:`torch.autocast` to bfloat16 (convolutions and matrix products in bf16, the loss,
  the weights and the optimizer in float32), as mixed-precision training does (Micikevicius et al.,
  "Mixed Precision Training", ICLR 2018; bf16 keeps float32's exponent range, so no loss scaling).
* ``auto``: bf16 on a CUDA GPU that supports it; on a CPU with native bf16 (AVX512-BF16 or AMX, read
  with ``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``), bf16 only where it is
  faster for *this* model: a short probe (:func:`probe_bf16_speedup`, a few seconds) times a training
  step in both formats and keeps bf16 when it is at least :data:`BF16_MIN_SPEEDUP` times faster. On a
  CPU without native bf16, and on Apple MPS, float32.

Why a probe and not a rule: on CPUs the answer depends on the layers. Measured on a 2-core Xeon with
AMX, training steps at batch 32 (``benchmarks/throughput.py``): ResNet18 at 256 px runs 2.1x faster
in bf16 + channels_last than in float32 + channels_last, while EfficientNet-Lite0 at 160 px, whose
depthwise convolutions gain nothing from bf16, runs 1.4x *slower* in bf16.

**channels_last** (NHWC memory layout) is used on CPUs and CUDA GPUs for every model: oneDNN's and
cuDNN's convolutions are fastest in it (on that CPU: 1.75x for EfficientNet-Lite0 and 1.45x for
ResNet18 in float32).
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from localizer.errors import ConfigError

from localizer.recipe import PRECISIONS

#: ``auto`` takes bf16 on a CPU when the probe finds it at least this much faster than float32:
#: a margin well above the probe's noise (a few per cent), so the same machine makes the same choice.
BF16_MIN_SPEEDUP = 1.1

#: Probe: batch size, untimed warm-up steps and timed steps per number format.
PROBE_BATCH, PROBE_WARMUP, PROBE_STEPS = 8, 1, 2


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


def probe_bf16_speedup(model: torch.nn.Module, device: torch.device, image_size: int) -> float:
    """How many times faster a training step (forward + backward) of ``model`` runs in bf16 autocast
    than in float32, both channels_last, on a batch of :data:`PROBE_BATCH` random images.

    The probe works on a copy of the model in eval mode (no dropout: torch's global random
    generator is not drawn from) and changes nothing of ``model``.
    """
    probe = copy.deepcopy(model).eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(PROBE_BATCH, 3, image_size, image_size, generator=generator)
    seconds = {}
    for bf16 in (False, True):
        numerics = Numerics(device, bf16=bf16, channels_last=True)
        numerics.place_model(probe)
        x = numerics.place_images(images)

        def step():
            with numerics.autocast():
                loss = probe(x).float().square().mean()
            loss.backward()
            probe.zero_grad(set_to_none=True)

        for _ in range(PROBE_WARMUP):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(PROBE_STEPS):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds[bf16] = time.perf_counter() - start
    return seconds[False] / seconds[True]


def choose_numerics(precision: str, device: torch.device, model: torch.nn.Module | None = None,
                    image_size: int = 224) -> tuple[Numerics, str]:
    """The numerics for ``precision`` (one of :data:`PRECISIONS`) on ``device``.

    Args:
        precision: ``auto``, ``fp32`` or ``bf16`` (see the module docstring).
        device: the training device.
        model: the model to probe (``auto`` on a CPU with native bf16 only).
        image_size: the input side of the probe, pixels.

    Returns:
        ``(numerics, why)``: the choice and one line saying why (printed at the start of training).

    Raises:
        localizer.errors.ConfigError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of {PRECISIONS}")
    if precision != "auto":
        return default_numerics(device, precision), f"precision={precision}"
    if not native_bf16(device):
        return default_numerics(device, "fp32"), f"auto: no native bf16 on {device.type}"
    if device.type != "cpu" or model is None:
        return default_numerics(device, "bf16"), f"auto: native bf16 on {device.type}"
    speedup = probe_bf16_speedup(model, device, image_size)
    precision = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    return default_numerics(device, precision), (
        f"auto: in a short probe, bf16 ran a training step of this model {speedup:.2f}x as fast as float32; "
        f"bf16 is used when that is at least {BF16_MIN_SPEEDUP}x")
