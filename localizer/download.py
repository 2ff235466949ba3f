"""Where the course data is, and the default dataset: Oxford-IIIT Pet, fetched with torchvision when missing.

:func:`default_data` is the one place that decides which folder a run uses when none is given: the
lion photos beside the repository (``../shared/data/lion``, where the course provides them) when they
exist, else :data:`DEFAULT_DATA`. ``make run``, ``python -m localizer run`` and the notebooks'
``data = None`` parameter all resolve it here, with :func:`ensure_data`.

Oxford-IIIT Pet: Parkhi, Vedaldi, Zisserman, Jawahar, "Cats and Dogs", CVPR 2012; CC BY-SA 4.0.
torchvision's :class:`~torchvision.datasets.OxfordIIITPet` downloads ``images/`` and ``annotations/``
(trimaps and head-box XMLs) into ``<root>/oxford-iiit-pet``, the layout the ``oxford-pets`` reader reads.
"""

from __future__ import annotations

import socket
from pathlib import Path

from .readers import FORMAT_HELP

#: The repository root (the folder holding ``localizer/`` and ``notebooks/``).
REPO_ROOT = Path(__file__).resolve().parents[1]

#: The course's lion photos, when the course provides them beside the repository.
COURSE_DATA = REPO_ROOT.parent / "shared" / "data" / "lion"

#: The dataset downloaded when no folder is given and the course data is not there.
DEFAULT_DATA = REPO_ROOT / "data" / "oxford-iiit-pet"

#: Seconds to wait for the network before giving up (so an offline machine fails fast, no hang).
DOWNLOAD_TIMEOUT_S = 20


class DataUnavailableError(RuntimeError):
    """The dataset folder is missing and could not be downloaded."""


def default_data() -> Path:
    """The dataset used when none is given: :data:`COURSE_DATA` when that folder exists, else
    :data:`DEFAULT_DATA` (which :func:`ensure_data` downloads when missing)."""
    return COURSE_DATA if COURSE_DATA.is_dir() else DEFAULT_DATA


def ensure_data(path: Path | str | None = None) -> Path:
    """Return the dataset folder ``path`` (``None``: :func:`default_data`), downloading the
    Oxford-IIIT Pet dataset when it is :data:`DEFAULT_DATA` and missing.

    Raises:
        FileNotFoundError: a folder that is not the default one does not exist.
        DataUnavailableError: the default folder is missing and the download failed (offline); the
            message says how to pass another folder and which formats are read.
    """
    path = default_data() if path is None else Path(path)
    if path.exists():
        return path
    if path.resolve() != DEFAULT_DATA:
        raise FileNotFoundError(f"data folder {path} does not exist. {FORMAT_HELP}")
    from torchvision.datasets import OxfordIIITPet

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        OxfordIIITPet(root=str(path.parent), download=True, target_types="segmentation")
    except Exception as exc:  # noqa: BLE001 - any network/archive failure means "not available"
        _remove_empty_dirs(path)
        raise DataUnavailableError(
            f"no data folder was given, and the default dataset (Oxford-IIIT Pet) is not in {path} and could "
            f"not be downloaded ({type(exc).__name__}: {str(exc)[:200]}). Give a dataset folder: "
            f"--data DIR (python -m localizer ...), make run DATA=DIR, or the data parameter of the "
            f"notebooks; or put the dataset in {path}. {FORMAT_HELP}"
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
