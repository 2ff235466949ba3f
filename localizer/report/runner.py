"""Run the four numbered notebooks headless with papermill, sharing one run folder.

``python -m localizer run --data DATA --profile quick`` executes ``notebooks/01`` to ``04`` in order
into ``RUN/notebooks/``: notebook 01 scans and explores the data (read as ``-p format``, ``oxford_box`` and
``classes`` say), 02 splits that scan into the run folder with the profile's recipe and the other ``-p``
values (:meth:`localizer.engine.run.Run.create`), 03 trains in it and 04 evaluates it, so the run folder
ends up holding the executed notebooks, the scan, ``manifest.csv``, ``history.csv``, ``checkpoints/``,
``metrics.json`` and ``figures/``. Each notebook receives the parameters its
``parameters`` cell declares. A failing cell stops the run with the notebook's name and the cell's
number; a kernel that dies (killed by the system, most often for lack of memory) stops it with the
notebook's name, the likely cause and how to continue (``run --resume``).

Paths: the kernels work in ``notebooks/``, as JupyterLab's do, and the runner passes paths relative to
the repository root (:func:`localizer.data.download.display_path`, so that executed notebooks show no
machine's folders); the notebooks resolve every path parameter with
:func:`localizer.report.notebook_runs.repo_path`, so a relative path means the same folder under the runner
and in JupyterLab.

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
from localizer.data.scans import SCAN_FIELDS, save_scan, scan_for
from localizer.errors import ConfigError
from localizer.progress import duration_text
from localizer.recipe import field_names, recipe_for
from localizer.engine.profile_choice import AUTO_PROFILE, choose_profile
from localizer.engine.distributed import train_processes
from localizer.engine.run import CONFIG, Run, foreign_entries
from localizer.files import OutputError, check_outputs, writable_folder
from localizer.report.failures import (KernelDied, NotebookDataError, NotebookFailed, data_error_names,
                                       dead_kernel_message)
from localizer.report.publish import (NOTEBOOKS, WIDGET_MIME, copy_figures, copy_outputs,  # noqa: F401
                                      make_copies, publish_notebooks, relative_papermill_paths)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


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


#: The notebook that trains; ``run --nproc`` trains on several processes before it (:func:`run_notebooks`).
TRAINING_NOTEBOOK = NOTEBOOKS[2]

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
    nproc: int = 1,
) -> Path:
    """Execute the notebooks in order with papermill; returns the run folder.

    Args:
        data: dataset folder (``None``: :func:`localizer.data.download.default_data`, downloaded when
            missing, see :func:`localizer.data.download.ensure_data`).
        profile: a key of :data:`localizer.recipe.PROFILES`, or ``"auto"`` (:func:`_parameters`); ``params``
            (recipe fields) override its values: ``format``, ``oxford_box`` and ``classes`` go to notebook 01,
            which reads the data, the others to notebook 02's ``recipe``.
        run_dir: run folder (default :func:`default_run_dir`).
        figures_dir: copy the four report figures here too, after the notebooks (e.g. ``figures/``;
            :func:`copy_figures`).
        publish_dir: copy the executed notebooks here too, for reading (:func:`publish_notebooks`).
        nproc: train on this many processes (:func:`localizer.engine.distributed.train_processes`, after
            notebook 02; notebook 03 then finds the training done and shows it); 1: in notebook 03's kernel.
        resume: continue in an existing run folder with its recipe and data (``params`` may change only the
            runtime fields; a finished training is not repeated).
        overwrite: replace an existing run folder (only a localizer run, see
            :func:`localizer.engine.run.foreign_entries`; not with ``resume``, which continues it) and
            the files already in ``figures_dir`` and ``publish_dir``.

    Raises:
        localizer.errors.ConfigError: unknown profile, a parameter that is no recipe field (a typo
            such as ``epoch`` would otherwise be ignored and the run would use the default), a
            value :class:`localizer.recipe.TrainConfig` refuses (e.g. ``epochs="two"``), or, with
            ``resume``, a change to the recipe or the data of the run folder.
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
    check_outputs(copy_outputs(figures_dir, publish_dir), inputs=[data or default_data()], overwrite=overwrite)
    run_dir, values, scan = _parameters(data, profile, run_dir, dict(params or {}), resume, progress)
    _make_room(run_dir, resume, overwrite and not resume)
    if scan is not None:
        save_scan(scan, run_dir)  # notebook 01 reads it instead of scanning again
    _run_all(notebooks, run_dir, values, progress, nproc)
    for kind, path in make_copies(run_dir, figures_dir, publish_dir, overwrite):
        print(f"{kind}: {path}", flush=True)
    return run_dir


def _run_all(notebooks: tuple[str, ...], run_dir: Path, values: dict, progress: bool, nproc: int) -> None:
    """Execute ``notebooks`` in order (:func:`_run_notebook`), training on ``nproc`` processes before the training
    notebook when ``nproc`` > 1, and print how long they took."""
    started = time.perf_counter()
    for name in notebooks:
        if name == TRAINING_NOTEBOOK and nproc > 1:
            with _headless_environment():  # a text line per epoch, as notebook 03 prints
                train_processes(run_dir, nproc, progress)
        _run_notebook(name, run_dir, values, progress)
    print(f"run: {len(notebooks)} notebooks in {duration_text(time.perf_counter() - started)} "
          f"(wall time, from the first notebook's start)", flush=True)


def _parameters(data, profile: str, run_dir, params: dict, resume: bool, progress: bool) -> tuple:
    """``(run_dir, values, scan)``: the run folder, the values the notebooks' parameters cells may take (paths
    relative to the repository, :func:`localizer.data.download.display_path`), and the scan ``auto`` chose the
    profile on (:func:`localizer.engine.profile_choice.choose_profile`, printed with the reason; None for a named
    profile), which notebook 01 then reads instead of scanning again. The recipe is checked now, not in notebook
    02; a run folder resumed keeps its recipe and data (notebook 02 gets ``profile=None``; :meth:`Run.open`
    refuses changes). Raises as :func:`run_notebooks` does."""
    unknown = set(params) - set(field_names())
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {sorted(unknown)}; the notebooks take the recipe's "
                          f"fields {sorted(field_names())}")
    if "data" in params:
        raise ConfigError("the data folder is --data (data=... in Python), not -p data")
    reading = {k: params.pop(k) for k in SCAN_FIELDS if k in params}  # notebook 01's
    if resume and run_dir is not None and (Path(run_dir) / CONFIG).is_file():
        given = {**reading, **({} if data is None else {"data": os.path.abspath(data)})}
        config, profile = Run.open(run_dir, **params, **given).config, None  # notebook 02 opens the run's recipe
    else:
        data = os.path.abspath(ensure_data(data))  # not resolve(): a data folder behind a link keeps its name
        config = recipe_for("quick" if profile == AUTO_PROFILE else profile, **params, **reading, data=data)
    scan = None
    if profile == AUTO_PROFILE:
        scan = scan_for(config.data, config.format, config.oxford_box, config.classes, run_dir, progress)
        profile, why = choose_profile(profile, scan, **params)
        print(f"profile {AUTO_PROFILE}: {why}", flush=True)
    run_dir = Path(os.path.abspath(run_dir or default_run_dir(profile)))
    values = {"data": display_path(config.data), "data_format": config.format, "oxford_box": config.oxford_box,
              "classes": config.classes, "seed": config.seed, "run_dir": display_path(run_dir), "profile": profile,
              "recipe": params}
    return run_dir, values, scan


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
    print(f"[{name}] done in {duration_text(time.perf_counter() - started)}", flush=True)
