"""Which folders the four notebooks work in, so that a student changes a recipe in one place.

In JupyterLab the parameters cells say ``run_dir = None``. Notebook 01 then saves its scan of the data
(:mod:`localizer.data.scans`) and its figures in ``runs/notebook/`` (:data:`NOTEBOOK_FOLDER`); notebook 02
trains each recipe in a folder of its own inside it, named after the profile and a digest of the recipe
(:func:`run_name`), and names that folder in ``runs/notebook/latest``; notebooks 03 and 04 open the run named
there (:func:`current_run`). So a changed profile, recipe value or data set trains into a new folder beside the
finished ones, 03 and 04 follow it, and the same recipe again finds its own folder, whose finished training is
reused. Given a ``run_dir`` (as ``python -m localizer run`` gives one to all four), every notebook works in
that one folder.

Relative paths are taken from the repository root (:func:`repo_path`), whatever the kernel's working folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from localizer.data.download import REPO_ROOT, display_path
from localizer.data.scans import SCAN_FIELDS
from localizer.data.validation import ScanResult
from localizer.engine.profile_choice import choose_profile
from localizer.engine.run import Run
from localizer.errors import ConfigError
from localizer.files import atomic_write_text
from localizer.recipe import TrainConfig, recipe_for, recipe_values

#: The notebooks' folder when ``run_dir`` is None (relative to the repository root).
NOTEBOOK_FOLDER = "runs/notebook"
#: The file in :data:`NOTEBOOK_FOLDER` that names the run notebook 02 made last.
LATEST = "latest"


def repo_path(path: str | Path | None) -> Path | None:
    """A path parameter of the notebooks as a folder: ``None`` stays None, an absolute path stays
    as it is, a relative one (``runs/notebook``, ``../shared/data/lion``) is taken from the
    repository root (:data:`localizer.data.download.REPO_ROOT`), whatever the kernel's working
    directory (``notebooks/`` in JupyterLab and under the runner). The inverse of
    :func:`localizer.data.download.display_path`, with which the runner passes paths; not resolved, so
    a folder behind a link keeps its name."""
    if path is None:
        return None
    path = Path(path)
    return path if path.is_absolute() else Path(os.path.normpath(REPO_ROOT / path))


def data_folder(run_dir: str | Path | None) -> Path:
    """Where notebook 01 saves the scan (and its figures) and notebook 02 reads it: ``run_dir``, or
    :data:`NOTEBOOK_FOLDER`."""
    return repo_path(NOTEBOOK_FOLDER if run_dir is None else run_dir)


def run_name(config: TrainConfig, profile: str | None) -> str:
    """The folder name of a recipe in :data:`NOTEBOOK_FOLDER`: the profile and the first 8 hex digits of a SHA-256
    of the recipe's values (:func:`localizer.recipe.recipe_values`: the data folder included, the runtime fields
    not), e.g. ``smoke-1f0c9a2e``. Another value gives another name; the same recipe, the same name."""
    values = json.dumps(recipe_values(config), sort_keys=True, default=str)
    return f"{profile or 'recipe'}-{hashlib.sha256(values.encode()).hexdigest()[:8]}"


def notebook_recipe(profile: str | None, recipe: dict, scan: ScanResult,
                    run_dir: str | Path | None = None) -> tuple[TrainConfig, str | None, str | None]:
    """The recipe notebook 02 trains: ``profile`` (``auto``: the one the training split calls for,
    :func:`localizer.engine.profile_choice.choose_profile`) with the values of ``recipe``, on the data ``scan``
    read (its :data:`localizer.data.scans.SCAN_FIELDS`, notebook 01's parameters). ``profile`` None: the recipe of
    the run already in ``run_dir`` (what ``run --resume`` continues), ``recipe`` changing only its runtime fields.

    Returns:
        ``(config, profile, why)``: the recipe, the profile it was made from, and why ``auto`` chose it (else None).

    Raises:
        localizer.errors.ConfigError: ``recipe`` sets one of the scan's fields (the data is notebook 01's), an
            unknown field or a bad value, or, with ``profile`` None, changes the run's recipe.
    """
    given = sorted(set(recipe) & set(SCAN_FIELDS))
    if given:
        raise ConfigError(f"recipe sets {', '.join(given)}: the data and how it is read are notebook 01's parameters "
                          "(data, data_format, oxford_box, classes); change them there and run notebook 01 again")
    if profile is None:
        run = Run.open(repo_path(run_dir), **recipe)
        return run.config, run.profile, None
    profile, why = choose_profile(profile, scan, **recipe)
    return recipe_for(profile, **recipe, **scan.settings), profile, why


def create_run(config: TrainConfig, profile: str | None, scan: ScanResult, run_dir: str | Path | None = None) -> Run:
    """Notebook 02's run folder (:meth:`localizer.engine.run.Run.create` with ``scan``): ``run_dir``, or, for None,
    :func:`run_name`'s folder in :data:`NOTEBOOK_FOLDER`, then named in its :data:`LATEST` for notebooks 03 and 04.

    Raises:
        as :meth:`localizer.engine.run.Run.create`.
    """
    if run_dir is not None:
        return Run.create(config, repo_path(run_dir), scan=scan, profile=profile)
    folder = repo_path(NOTEBOOK_FOLDER)
    run = Run.create(config, folder / run_name(config, profile), scan=scan, profile=profile)
    atomic_write_text(folder / LATEST, f"{run.folder.name}\n", replace=True)
    return run


def current_run(run_dir: str | Path | None = None) -> Path:
    """The run folder notebooks 03 and 04 open: ``run_dir``, or the one :data:`LATEST` names.

    Raises:
        FileNotFoundError: ``run_dir`` is None and notebook 02 has made no run yet.
    """
    if run_dir is not None:
        return repo_path(run_dir)
    latest = repo_path(NOTEBOOK_FOLDER) / LATEST
    if not latest.is_file():
        raise FileNotFoundError(f"no run yet ({display_path(latest)} is missing): run notebook 02 first, which "
                                "makes the run folder and names it there")
    return latest.parent / latest.read_text().strip()
