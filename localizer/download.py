"""The default dataset: the Oxford-IIIT Pet dataset, fetched with torchvision when it is missing.

Parkhi, Vedaldi, Zisserman, Jawahar, "Cats and Dogs", CVPR 2012; CC BY-SA 4.0. torchvision's
:class:`~torchvision.datasets.OxfordIIITPet` downloads ``images/`` and ``annotations/`` (trimaps
and head-box XMLs) into ``<root>/oxford-iiit-pet``, the layout the ``oxford-pets`` reader reads.
"""

from __future__ import annotations

import socket
from pathlib import Path

from .readers import FORMAT_HELP

#: Where the default dataset lives, relative to the working directory (the repository root).
DEFAULT_DATA = Path("data") / "oxford-iiit-pet"

#: Seconds to wait for the network before giving up (so an offline machine fails fast, no hang).
DOWNLOAD_TIMEOUT_S = 20


class DataUnavailableError(RuntimeError):
    """The dataset folder is missing and could not be downloaded."""


def ensure_data(path: Path | str = DEFAULT_DATA) -> Path:
    """Return ``path`` if it exists; download the Oxford-IIIT Pet dataset there if ``path`` is the
    default folder and missing.

    Raises:
        FileNotFoundError: a non-default folder does not exist.
        DataUnavailableError: the default folder is missing and the download failed (offline); the
            message says where to put data and which formats are read.
    """
    path = Path(path)
    if path.exists():
        return path
    if path.resolve() != DEFAULT_DATA.resolve():
        raise FileNotFoundError(f"data folder {path} does not exist. {FORMAT_HELP}")
    from torchvision.datasets import OxfordIIITPet

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        OxfordIIITPet(root=str(path.parent), download=True, target_types="segmentation")
    except Exception as exc:  # noqa: BLE001 - any network/archive failure means "not available"
        _remove_empty_dirs(path)
        raise DataUnavailableError(
            f"the default dataset {path} is missing and could not be downloaded "
            f"({type(exc).__name__}: {str(exc)[:200]}). Put a dataset folder there or pass --data "
            f"DATA (e.g. --data ../shared/data/lion). {FORMAT_HELP}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def _remove_empty_dirs(path: Path) -> None:
    """Remove ``path`` and its parent if a failed download left them empty."""
    for folder in (path, path.parent):
        try:
            folder.rmdir()
        except OSError:
            pass
