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

import os
from pathlib import Path

from localizer.network import download_timeout

#: The repository root (the folder holding ``localizer/`` and ``notebooks/``).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: The course's lion photos, when the course provides them beside the repository.
COURSE_DATA = REPO_ROOT.parent / "shared" / "data" / "lion"

#: The dataset downloaded when no folder is given and the course data is not there.
DEFAULT_DATA = REPO_ROOT / "data" / "oxford-iiit-pet"


def display_path(path: str | Path) -> str:
    """``path`` as notebooks and printed summaries show it: relative to the repository root (where
    the notebooks work) when it lies inside the repository or beside it (the course data,
    ``../shared/data/lion``), so that executed notebooks do not show where a clone is on one
    machine; else absolute (``/tmp/run`` stays ``/tmp/run``)."""
    path = Path(os.path.abspath(path))
    if path.is_relative_to(REPO_ROOT.parent):
        return Path(os.path.relpath(path, REPO_ROOT)).as_posix()
    return str(path)


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
        raise FileNotFoundError(f"data folder {path} does not exist")
    from torchvision.datasets import OxfordIIITPet

    try:
        with download_timeout():
            OxfordIIITPet(root=str(path.parent), download=True, target_types="segmentation")
    except Exception as exc:  # noqa: BLE001 - any network/archive failure means "not available"
        _remove_empty_dirs(path)
        raise DataUnavailableError(
            f"no data folder was given; the course's lion photos are not beside the repository "
            f"({COURSE_DATA}), and the default dataset (Oxford-IIIT Pet) is not in {path} and could not be "
            f"downloaded ({type(exc).__name__}: {str(exc)[:200]}). Give a dataset folder: --data DIR "
            f"(python -m localizer ...), make run DATA=DIR, or the data parameter of the notebooks; or put "
            f"the dataset in {path}. The layouts read are in docs/data-formats.md. To try the pipeline offline: "
            f"make smoke (it draws a small data set with known boxes into build/synthetic and runs the notebooks "
            f"on it)."
        ) from None
    return path


def _remove_empty_dirs(path: Path) -> None:
    """Remove ``path`` and its parent if a failed download left them empty."""
    for folder in (path, path.parent):
        try:
            folder.rmdir()
        except OSError:
            pass
