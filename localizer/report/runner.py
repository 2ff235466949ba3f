"""Run the four numbered notebooks headless with papermill, sharing one run folder.

``python -m localizer run --data DATA --profile quick`` executes ``notebooks/01`` to ``04`` in order
into ``RUN/notebooks/``: notebook 01 explores the data, 02 creates the run folder from the profile's
recipe with the ``-p`` values (:meth:`localizer.engine.run.Run.create`), 03 trains in it and 04 evaluates
it, so the run folder ends up holding the executed notebooks, ``manifest.csv``, ``history.csv``,
``checkpoints/``, ``metrics.json`` and ``figures/``. Each notebook receives the parameters its
``parameters`` cell declares. A failing cell stops the run with the notebook's name and the cell's
number; a kernel that dies (killed by the system, most often for lack of memory) stops it with the
notebook's name, the likely cause and how to continue (``run --resume``).

Paths: the kernels work in ``notebooks/``, as JupyterLab's do, and the runner passes paths relative to
the repository root (:func:`localizer.data.download.display_path`, so that executed notebooks show no
machine's folders); the notebooks resolve every path parameter with :func:`repo_path`, so a relative
path means the same folder under the runner, in JupyterLab and under nbval.

What the terminal shows: the notebooks' printed output as it comes (papermill's ``stdout_file`` and
``stderr_file``), so training prints one line per epoch with the time left
(:func:`localizer.progress.epoch_line`). The kernels run with ``TQDM_DISABLE=1``: a tqdm bar in a
headless notebook is a widget nobody sees, whose last state would stay in the executed notebook.
Copies for reading (``--publish``, ``--figures``) are made by :mod:`localizer.report.publish`.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from unittest import mock

from localizer.data.download import REPO_ROOT, default_data, display_path, ensure_data
from localizer.errors import ConfigError
from localizer.recipe import PROFILES, field_names, recipe_for, recipe_values
from localizer.engine.profile_choice import AUTO_PROFILE, choose_profile
from localizer.engine.run import CONFIG, foreign_entries
from localizer.files import OutputError, check_outputs, writable_folder
from localizer.report.failures import (KernelDied, NotebookDataError, NotebookFailed, data_error_names,
                                       dead_kernel_message)
from localizer.report.publish import (NOTEBOOKS, WIDGET_MIME, copy_figures, copy_outputs,  # noqa: F401
                                      make_copies, publish_notebooks, relative_papermill_paths)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def repo_path(path: str | Path | None) -> Path | None:
    """A path parameter of the notebooks as a folder: ``None`` stays None, an absolute path stays
    as it is, a relative one (``runs/notebook``, ``../shared/data/lion``) is taken from the
    repository root (:data:`localizer.data.download.REPO_ROOT`), whatever the kernel's working
    directory (``notebooks/`` in JupyterLab and under the runner, ``tests/notebooks/`` under nbval).
    The inverse of :func:`localizer.data.download.display_path`, with which the runner passes paths;
    not resolved, so a folder behind a link keeps its name."""
    if path is None:
        return None
    path = Path(path)
    return path if path.is_absolute() else Path(os.path.normpath(REPO_ROOT / path))


def _make_room(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Check that the run may go into ``run_dir``: an empty or new folder, a run to continue
    (``resume``), or a run to replace (``overwrite``: deleted now, but only a localizer run); then make
    its ``notebooks/`` folder.

    Raises:
        FileExistsError: see :func:`run_notebooks`.
        localizer.files.OutputError: ``read-only-output``: ``run_dir`` cannot be written.
    """
    if writable_folder(run_dir / "notebooks") is None:
        raise OutputError("read-only-output", "the run folder cannot be written (read-only, or not a folder); "
                                              "choose another --run-dir", run_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        _replace_run(run_dir, overwrite)
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)


def _replace_run(run_dir: Path, overwrite: bool) -> None:
    """Delete the run in the non-empty ``run_dir`` to start afresh (``overwrite``; only a localizer run).

    Raises:
        FileExistsError: see :func:`run_notebooks`.
    """
    if not overwrite:
        raise FileExistsError(f"run folder {run_dir} is not empty; pass --resume to continue it, "
                              "--overwrite to replace it, or choose another --run-dir")
    foreign = foreign_entries(run_dir)
    if foreign:
        raise FileExistsError(f"{run_dir} is not a localizer run folder (it holds {', '.join(foreign[:5])}"
                              f"{', ...' if len(foreign) > 5 else ''}); --overwrite replaces only run folders. "
                              "Choose another --run-dir")
    shutil.rmtree(run_dir)


#: Arguments of the headless kernel: its log only at ERROR, so that ipykernel's warning about
#: unencrypted TCP (the kernel talks to papermill on this machine's loopback only) does not
#: repeat for every notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def _headless_environment():
    """Environment of the headless kernels (a context manager; the runner's own is restored after):
    ``TQDM_DISABLE=1``, which tqdm reads as the default of its ``disable``, turns the progress bars
    off (papermill cannot show widgets, and their last state would stay in the executed notebooks
    as stale ``0%| | 0/54`` lines); training prints a text line per epoch instead."""
    return mock.patch.dict(os.environ, {"TQDM_DISABLE": "1"})


def default_run_dir(profile: str) -> Path:
    """``runs/<profile>-<YYYYmmdd-HHMMSS>`` under the working directory (a new folder per run)."""
    return Path("runs") / f"{profile}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_notebooks(
    data: str | Path | None = None,
    profile: str = "quick",
    run_dir: str | Path | None = None,
    params: dict | None = None,
    figures_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    progress: bool = True,
    publish_dir: str | Path | None = None,
) -> Path:
    """Execute the notebooks in order with papermill; returns the run folder.

    Args:
        data: dataset folder (``None``: :func:`localizer.data.download.default_data`, downloaded when
            missing, see :func:`localizer.data.download.ensure_data`).
        profile: a key of :data:`localizer.recipe.PROFILES`, or ``"auto"``: the one the size of the training
            split calls for (:func:`localizer.engine.profile_choice.choose_profile`, printed with the reason);
            ``params`` (recipe fields, see :class:`localizer.recipe.TrainConfig`) override its values.
        run_dir: run folder (default :func:`default_run_dir`).
        figures_dir: copy the four report figures here too, after the notebooks (e.g. ``figures/``;
            :func:`copy_figures`).
        publish_dir: copy the executed notebooks here too, for reading (:func:`publish_notebooks`).
        resume: continue in an existing run folder with the recipe it was started with
            (:func:`resumed_recipe`; a finished training is not repeated).
        overwrite: replace an existing run folder (only a localizer run, see
            :func:`localizer.engine.run.foreign_entries`; not with ``resume``, which continues it) and
            the files already in ``figures_dir`` and ``publish_dir``.

    Raises:
        localizer.errors.ConfigError: unknown profile, a parameter that is no recipe field (a typo
            such as ``epoch`` would otherwise be ignored and the run would use the default), a
            value :class:`localizer.recipe.TrainConfig` refuses (e.g. ``epochs="two"``), or, with
            ``resume``, a change to the recipe of the run folder.
        FileExistsError: ``run_dir`` is not empty and neither ``resume`` nor ``overwrite``, or
            ``overwrite`` on a folder that is not a localizer run
            (:func:`localizer.engine.run.foreign_entries`): it is never deleted.
        NotebookDataError: a cell stopped on unusable data (e.g. too few usable photos to split).
        KernelDied: a notebook's kernel died (e.g. killed for lack of memory).
        NotebookFailed: a cell raised anything else.
        FileNotFoundError: ``figures_dir`` is given and a report figure was not made.
        FileExistsError, localizer.files.OutputError: a file in ``figures_dir`` or ``publish_dir``
            exists and ``overwrite`` is False, or a folder cannot be written (checked before the first
            notebook, :func:`localizer.files.check_outputs`).
    """
    params = dict(params or {})
    check_outputs(copy_outputs(figures_dir, publish_dir), inputs=[data or default_data()], overwrite=overwrite)
    data, profile = _chosen_profile(data, profile, params, run_dir, resume, progress)
    run_dir = Path(os.path.abspath(run_dir or default_run_dir(profile)))
    values = _parameters(data, profile, run_dir, params, resume)
    _make_room(run_dir, resume, overwrite and not resume)
    started = time.perf_counter()
    for name in notebooks:
        _run_notebook(name, run_dir, values, progress)
    print(f"run: {len(notebooks)} notebooks in {_minutes(time.perf_counter() - started)} "
          f"(wall time, from the first notebook's start)", flush=True)
    for kind, path in make_copies(run_dir, figures_dir, publish_dir, overwrite):
        print(f"{kind}: {path}", flush=True)
    return run_dir


def _parameters(data, profile: str, run_dir: Path, params: dict, resume: bool) -> dict:
    """The values the notebooks' parameters cells may take, paths relative to the repository
    (:func:`localizer.data.download.display_path`); the recipe checked now, not in notebook 02.
    Raises as :func:`run_notebooks` does."""
    if resume and (run_dir / CONFIG).is_file():
        profile, params, data = resumed_recipe(run_dir, profile, params, data)
    data = Path(os.path.abspath(ensure_data(data)))  # not resolve(): a data folder behind a link keeps its name
    config = recipe_for(profile, **params, data=str(data))
    return {"data": display_path(data), "data_format": config.format, "oxford_box": config.oxford_box,
            "classes": config.classes, "seed": config.seed, "run_dir": display_path(run_dir),
            "profile": profile, "recipe": params}


def _chosen_profile(data, profile: str, params: dict, run_dir, resume: bool, progress: bool) -> tuple:
    """``(data, profile)``: ``profile``, or the one ``auto`` stands for, printed with the reason
    (:func:`localizer.engine.profile_choice.choose_profile`; the data downloaded first when missing). A run
    folder resumed with a recipe of its own keeps that recipe (:func:`resumed_recipe`).

    Raises:
        localizer.errors.ConfigError: a parameter that is no recipe field (a typo such as ``epoch``).
    """
    unknown = set(params) - set(field_names())
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {sorted(unknown)}; the notebooks take the recipe's "
                          f"fields {sorted(field_names())}")
    if profile != AUTO_PROFILE or (resume and run_dir is not None and (Path(run_dir) / CONFIG).is_file()):
        return data, profile
    data = ensure_data(data)
    profile, why = choose_profile(profile, progress=progress, **params, data=os.path.abspath(data))
    print(f"profile {AUTO_PROFILE}: {why}", flush=True)
    return data, profile


def resumed_recipe(run_dir: Path, profile: str, params: dict, data) -> tuple[str, dict, str]:
    """``(profile, params, data)`` that give notebook 02 the recipe the run in ``run_dir`` was
    started with (its ``config.json``), so that ``run --resume`` continues it whatever ``--profile``
    says: the profile of :data:`localizer.recipe.PROFILES` that needs the fewest overrides (``profile``
    on a tie) and those overrides. ``params`` may change the runtime fields
    (:data:`localizer.recipe.RUNTIME_FIELDS`, e.g. ``workers=0`` after a kernel died for lack of
    memory).

    Raises:
        localizer.errors.ConfigError: ``params`` or ``data`` change the recipe of the run
            (:meth:`localizer.engine.run.Run.open`).
    """
    from localizer.engine.run import Run

    given = {**params, **({} if data is None else {"data": os.path.abspath(data)})}
    config = Run.open(run_dir, **given).config  # the saved recipe, with the runtime fields given
    wanted = recipe_values(config, [name for name in field_names() if name != "data"])

    def overrides(name: str) -> dict:
        base = recipe_values(recipe_for(name), list(wanted))
        return {k: v for k, v in wanted.items() if base[k] != v}

    best = min([name for name in (profile, *PROFILES) if name in PROFILES], key=lambda name: len(overrides(name)))
    return best, overrides(best), config.data


def _run_notebook(name: str, run_dir: Path, values: dict, progress: bool) -> None:
    """Execute ``notebooks/<name>.ipynb`` into ``run_dir/notebooks/`` with the ``values`` its
    parameters cell declares, in ``notebooks/`` as JupyterLab does; see :func:`run_notebooks` for
    the errors."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    output = run_dir / "notebooks" / f"{name}.ipynb"
    if progress:
        print(f"[{name}] running -> {output}", flush=True)
    started = time.perf_counter()
    source = NOTEBOOK_DIR / f"{name}.ipynb"
    declared = papermill.inspect_notebook(str(source))
    try:
        with _headless_environment():
            papermill.execute_notebook(
                str(source), str(output), parameters={k: v for k, v in values.items() if k in declared},
                cwd=str(NOTEBOOK_DIR), kernel_name="python3", progress_bar=False,
                stdout_file=sys.stdout if progress else None, stderr_file=sys.stderr if progress else None,
                extra_arguments=KERNEL_ARGUMENTS,
            )
    except PapermillExecutionError as exc:
        message = (f"{name}.ipynb failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
                   f"the executed notebook is {output}")
        if exc.ename in data_error_names():
            raise NotebookDataError("", message) from None
        raise NotebookFailed(message) from None
    except DeadKernelError:
        raise KernelDied(dead_kernel_message(name, run_dir, output)) from None
    relative_papermill_paths(output)
    print(f"[{name}] done in {_minutes(time.perf_counter() - started)}", flush=True)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
