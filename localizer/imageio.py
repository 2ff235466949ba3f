"""Safe image decoding: every photo enters the pipeline through :func:`load_rgb`.

An image is decoded fully (so a truncated file is caught here, not in epoch 7), oriented with
:func:`PIL.ImageOps.exif_transpose` (so width and height are as displayed) and converted to RGB
(grayscale, palette, CMYK, RGBA and 16-bit files all work, whatever their file name says).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError

#: File name endings treated as images when a folder is scanned. Other files (e.g. the ``.mat``
#: files of the Oxford-IIIT Pet download) are not images and are not counted.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


class ImageLoadError(DataError):
    """An image that cannot be used (``reason``: ``unreadable``, ``not-an-image``, ``corrupt``, ...).
    Raised as ``ImageLoadError(path, reason, detail)``."""

    def __init__(self, path: Path | str, reason: str, detail: str):
        super().__init__(reason, detail, path)


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
        The image in mode ``"RGB"``, size ``(width, height)`` as displayed.

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
                oriented = ImageOps.exif_transpose(img)
                rgb = _to_rgb(oriented)
                rgb.load()
                return rgb
    except ImageLoadError:
        raise
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise ImageLoadError(path, "unreadable", exc.strerror or str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(path, "not-an-image", "the content is not an image format Pillow reads") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, "decompression-bomb", str(exc)) from exc
    except OSError as exc:
        message = str(exc)
        reason = "truncated" if "truncated" in message.lower() else "corrupt"
        raise ImageLoadError(path, reason, message) from exc
    except (ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageLoadError(path, "corrupt", f"{type(exc).__name__}: {exc}") from exc


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
