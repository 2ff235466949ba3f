"""Safe image decoding: every photo enters the pipeline through :func:`load_rgb`.

An image is decoded fully (so a truncated file is caught here, not in epoch 7), oriented with
:func:`PIL.ImageOps.exif_transpose` (so width and height are as displayed) and converted to RGB
(grayscale, palette, CMYK, RGBA and 16-bit files all work, whatever their file name says).

The EXIF orientation applied and the size of the stored pixel grid stay known (:func:`decoded_frame`),
so that boxes annotated on the stored, un-rotated frame can be moved with the pixels
(:func:`exif_transpose_boxes`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError, features
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from localizer.errors import DataError

#: File name endings treated as images when a folder is scanned: the photo formats Pillow reads
#: (``.jfif`` and ``.jpe`` are JPEG; ``.avif`` needs a Pillow built with libavif, as the wheels are
#: since 11.2; ``.heic``/``.heif`` need the ``pillow-heif`` plugin, used when installed). Each one is
#: listed when found, and one that cannot be decoded is skipped with the reason. Other files (e.g.
#: the ``.mat`` files of the Oxford-IIIT Pet download) are not images and are not counted.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                              ".avif", ".heic", ".heif"})

try:  # HEIC/HEIF (iPhone photos): read when the maintained plugin is installed
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - depends on the environment
    HEIF_PLUGIN = False
else:  # pragma: no cover
    register_heif_opener()
    HEIF_PLUGIN = True


def missing_decoder(path: Path) -> str | None:
    """Why this Pillow cannot decode ``path``'s format, judged by its ending (HEIC without
    ``pillow-heif``, AVIF without libavif), or None."""
    suffix = path.suffix.lower()
    if suffix in (".heic", ".heif") and not HEIF_PLUGIN:
        return "HEIC/HEIF needs the pillow-heif plugin (pip install pillow-heif), which is not installed"
    if suffix == ".avif" and not features.check("avif"):
        return "this Pillow was built without AVIF support (libavif); install a Pillow wheel >= 11.2"
    return None


class ImageLoadError(DataError):
    """An image that cannot be used (``reason``: ``unreadable``, ``not-an-image``, ``corrupt``, ...).
    Raised as ``ImageLoadError(path, reason, detail)``."""

    def __init__(self, path: Path | str, reason: str, detail: str):
        super().__init__(reason, detail, path)


#: EXIF orientations (tag 0x0112) that swap width and height: 5 transpose, 6 rotate 90 degrees clockwise
#: to display, 7 transverse, 8 rotate 90 degrees counter-clockwise to display.
AXIS_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})

#: Key of :attr:`PIL.Image.Image.info` under which :func:`load_rgb` records the :class:`DecodedFrame`.
FRAME_INFO_KEY = "localizer.decoded_frame"


@dataclass(frozen=True)
class DecodedFrame:
    """How a photo returned by :func:`load_rgb` relates to the pixel grid stored in its file.

    Attributes:
        orientation: the EXIF orientation (tag 0x0112, 1-8) that :func:`PIL.ImageOps.exif_transpose`
            applied; 1 when the file has none, or a value outside 1-8 (which Pillow ignores too).
        raw_size: ``(width, height)`` in pixels of the stored (un-rotated) grid, as decoded. Equal to
            the displayed size, or swapped for :data:`AXIS_SWAPPING_ORIENTATIONS`.
    """

    orientation: int
    raw_size: tuple[int, int]

    @property
    def swaps_axes(self) -> bool:
        """True when displaying the stored grid swaps its width and height (orientations 5-8)."""
        return self.orientation in AXIS_SWAPPING_ORIENTATIONS


def decoded_frame(img: Image.Image) -> DecodedFrame:
    """The :class:`DecodedFrame` that :func:`load_rgb` recorded on ``img`` (in ``img.info``).

    An image that does not come from :func:`load_rgb` counts as stored as displayed: orientation 1,
    ``raw_size = img.size``. Pillow copies ``info`` to images derived from it (``resize``, ``crop``),
    whose record then still describes the decoded file, not their own size.
    """
    frame = img.info.get(FRAME_INFO_KEY)
    return frame if isinstance(frame, DecodedFrame) else DecodedFrame(1, tuple(img.size))


def is_image_file(path: Path) -> bool:
    """True when ``path`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def load_rgb(path: Path | str, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file completely and return it as an EXIF-oriented RGB :class:`PIL.Image.Image`.

    Args:
        path: image file; its content decides the format, not its name (a GIF or PNG named
            ``.jpg`` loads).
        max_pixels: refuse images with more pixels than this (decompression-bomb guard). Default:
            Pillow's ``Image.MAX_IMAGE_PIXELS`` (89,478,485 px, about 0.25 GB as 24-bit RGB).

    Returns:
        The image in mode ``"RGB"``, size ``(width, height)`` as displayed. Its
        ``info[FRAME_INFO_KEY]`` holds the :class:`DecodedFrame` (EXIF orientation applied and stored
        size); read it with :func:`decoded_frame`.

    Raises:
        ImageLoadError: with ``reason`` one of ``unreadable`` (missing or no permission),
            ``not-an-image`` (content is no image format Pillow knows), ``decompression-bomb``
            (more than ``max_pixels``), ``truncated`` (the data ends early) or ``corrupt``
            (the decoder failed on the data).
    """
    path = Path(path)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises only above twice that; we refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if limit is not None and width * height > limit:
                    raise ImageLoadError(
                        path, "decompression-bomb",
                        f"{width}x{height} = {width * height:,} pixels exceeds the limit of {limit:,}",
                    )
                img.load()
                # read as exif_transpose reads it: values outside 2..8 leave the pixels as stored
                orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
                valid = isinstance(orientation, int) and 2 <= orientation <= 8
                frame = DecodedFrame(orientation if valid else 1, (width, height))
                oriented = ImageOps.exif_transpose(img)
                rgb = _to_rgb(oriented)
                rgb.load()
                rgb.info[FRAME_INFO_KEY] = frame
                return rgb
    except ImageLoadError:
        raise
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise ImageLoadError(path, "unreadable", exc.strerror or str(exc)) from exc
    except UnidentifiedImageError as exc:
        why = missing_decoder(path)
        raise ImageLoadError(path, "not-an-image", f"the content is not an image format Pillow reads"
                                                   f"{f' ({why})' if why else ''}") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, "decompression-bomb", str(exc)) from exc
    except OSError as exc:
        message = str(exc)
        reason = "truncated" if "truncated" in message.lower() else "corrupt"
        raise ImageLoadError(path, reason, message) from exc
    except (ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageLoadError(path, "corrupt", f"{type(exc).__name__}: {exc}") from exc


def exif_transpose_boxes(boxes: np.ndarray, orientation: int, raw_width: int, raw_height: int) -> np.ndarray:
    """Move boxes drawn on a stored (un-rotated) pixel grid to the photo as displayed.

    The same transform as :func:`PIL.ImageOps.exif_transpose` applies to the pixels, done with
    torchvision's box functionals on :class:`torchvision.tv_tensors.BoundingBoxes` (not clamped):
    2 horizontal flip, 3 rotation by 180 degrees (both flips), 4 vertical flip, 5 transpose
    (rotation by 90 degrees clockwise, then horizontal flip), 6 rotation by 90 degrees clockwise
    (Pillow's ``ROTATE_270``), 7 transverse (90 degrees counter-clockwise, then horizontal flip),
    8 rotation by 90 degrees counter-clockwise (``ROTATE_90``); 1 leaves the boxes. With continuous
    coordinates (see :mod:`localizer.boxes`) orientation 6 maps a point ``(x, y)`` of a W x H grid
    to ``(H - y, x)``.

    Args:
        boxes: ``(K, 4)`` pixel xyxy (continuous) on the stored grid.
        orientation: EXIF orientation 1-8 (tag 0x0112).
        raw_width, raw_height: size of the stored grid in pixels.

    Returns:
        ``(K, 4)`` float64 pixel xyxy on the displayed photo (``raw_height`` x ``raw_width`` for
        orientations 5-8), rounded to 1e-6 px (the 90-degree rotation matrices carry float error).

    Raises:
        ValueError: ``orientation`` is not 1-8.
    """
    if orientation not in range(1, 9):
        raise ValueError(f"EXIF orientation must be 1-8, got {orientation!r}")
    tensor = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).reshape(-1, 4)
    out = tv_tensors.BoundingBoxes(tensor, format="XYXY", canvas_size=(raw_height, raw_width), clamping_mode=None)
    steps = {
        1: [],
        2: [TF.horizontal_flip],
        3: [TF.horizontal_flip, TF.vertical_flip],
        4: [TF.vertical_flip],
        5: [_rotate_clockwise, TF.horizontal_flip],
        6: [_rotate_clockwise],
        7: [_rotate_counter_clockwise, TF.horizontal_flip],
        8: [_rotate_counter_clockwise],
    }[orientation]
    for step in steps:
        out = step(out)
    return np.round(out.as_subclass(torch.Tensor).numpy(), 6) + 0.0  # + 0.0: no -0.0


def _rotate_clockwise(boxes: tv_tensors.BoundingBoxes) -> tv_tensors.BoundingBoxes:
    return TF.rotate(boxes, -90.0, expand=True)


def _rotate_counter_clockwise(boxes: tv_tensors.BoundingBoxes) -> tv_tensors.BoundingBoxes:
    return TF.rotate(boxes, 90.0, expand=True)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited over white, not over black."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bits instead of clipping everything above 255 to white.
        img = img.point(lambda v: v / 256).convert("L")
    return img.convert("RGB")
