"""Run the four numbered notebooks headless with papermill, sharing one run folder.

``python -m localizer run --data DATA --profile quick`` executes ``notebooks/01`` to ``04`` in order
into ``RUN/notebooks/``: notebook 01 explores the data, 02 creates the run folder from the profile's
recipe with the ``-p`` values (:meth:`localizer.engine.run.Run.create`), 03 trains in it and 04 evaluates
it, so the run folder ends up holding the executed notebooks, ``manifest.csv``, ``history.csv``,
``checkpoints/``, ``metrics.json`` and ``figures/``. Each notebook receives the parameters its
``parameters`` cell declares. A failing cell stops the run with the notebook's name and the cell's
number.

What the terminal shows: the notebooks' printed output as it comes (papermill's ``stdout_file`` and
``stderr_file``), so training prints one line per epoch with the time left
(:func:`localizer.engine.training.epoch_line`). The kernels run with ``TQDM_DISABLE=1``: a tqdm bar in a
headless notebook is a widget nobody sees, whose last state would stay in the executed notebook.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from localizer.data.download import REPO_ROOT, display_path, ensure_data
from localizer.errors import ConfigError, DataError
from localizer.recipe import field_names, recipe_for
from localizer.engine.run import foreign_entries

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = (
    "01_data_exploration",
    "02_preprocessing_and_split",
    "03_model_and_training",
    "04_evaluation_and_inference",
)

#: Output types that only a live frontend can show (a tqdm bar's widget): a static view (nbconvert,
#: a repository page) shows their stale text, so published notebooks drop them.
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class NotebookFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


class NotebookDataError(DataError):
    """A notebook cell stopped on unusable data or a missing dataset (too few photos, an offline
    download, ...): the user's input, not a bug; the message names the notebook, the cell and the error."""


def _data_error_names() -> set[str]:
    """Class names of the exceptions that mean "unusable input" (:class:`localizer.errors.DataError`
    and its subclasses, missing files and datasets), as a failed notebook reports them."""
    from localizer.data import readers, split  # noqa: F401 - import the modules that define subclasses
    from localizer.engine import run  # noqa: F401

    names, todo = {"FileNotFoundError", "DataUnavailableError"}, [DataError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


def _make_room(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Check that the run may go into ``run_dir``: an empty or new folder, a run to continue
    (``resume``), or a run to replace (``overwrite``: deleted now, but only a localizer run).

    Raises:
        FileExistsError: see :func:`run_notebooks`.
    """
    if not run_dir.exists() or not any(run_dir.iterdir()) or resume:
        return
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


@contextmanager
def _headless_environment():
    """Environment of the headless kernels: ``TQDM_DISABLE=1`` turns the tqdm progress bars off
    (papermill cannot show widgets, and their last state would stay in the executed notebooks as
    stale ``0%| | 0/54`` lines); training prints a text line per epoch instead."""
    saved = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = saved


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
        profile: a key of :data:`localizer.recipe.PROFILES`; ``params`` (recipe fields, see
            :class:`localizer.recipe.TrainConfig`) override its values.
        run_dir: run folder (default :func:`default_run_dir`).
        figures_dir: copy the four report figures here too (e.g. ``figures/``; notebook 04 does it).
        publish_dir: copy the executed notebooks here too, for reading (:func:`publish_notebooks`).
        resume: continue in an existing run folder (a finished training is not repeated).
        overwrite: replace an existing run folder (only a localizer run, see
            :func:`localizer.engine.run.foreign_entries`).

    Raises:
        localizer.errors.ConfigError: unknown profile, a parameter that is no recipe field (a typo
            such as ``epoch`` would otherwise be ignored and the run would use the default), or a
            value :class:`localizer.recipe.TrainConfig` refuses (e.g. ``epochs="two"``).
        FileExistsError: ``run_dir`` is not empty and neither ``resume`` nor ``overwrite``, or
            ``overwrite`` on a folder that is not a localizer run
            (:func:`localizer.engine.run.foreign_entries`): it is never deleted.
        NotebookDataError: a cell stopped on unusable data (e.g. too few usable photos to split).
        NotebookFailed: a cell raised anything else.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    params = dict(params or {})
    unknown = set(params) - set(field_names())
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {sorted(unknown)}; the notebooks take the recipe's "
                          f"fields {sorted(field_names())}")
    data = Path(os.path.abspath(ensure_data(data)))  # not resolve(): a data folder behind a link keeps its name
    config = recipe_for(profile, **params, data=str(data))  # a bad value fails now, not in notebook 02
    run_dir = Path(os.path.abspath(run_dir or default_run_dir(profile)))
    _make_room(run_dir, resume, overwrite)
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    values = {"data": display_path(data), "data_format": config.format, "oxford_box": config.oxford_box,
              "classes": config.classes, "seed": config.seed, "run_dir": display_path(run_dir),
              "profile": profile, "recipe": params,
              "figures_dir": None if figures_dir is None else display_path(figures_dir)}
    started = time.perf_counter()
    for name in notebooks:
        output = run_dir / "notebooks" / f"{name}.ipynb"
        if progress:
            print(f"[{name}] running -> {output}", flush=True)
        notebook_started = time.perf_counter()
        source = NOTEBOOK_DIR / f"{name}.ipynb"
        declared = papermill.inspect_notebook(str(source))
        try:
            with _headless_environment():
                papermill.execute_notebook(
                    str(source), str(output), parameters={k: v for k, v in values.items() if k in declared},
                    cwd=str(REPO_ROOT), kernel_name="python3", progress_bar=False,
                    stdout_file=sys.stdout if progress else None, stderr_file=sys.stderr if progress else None,
                    extra_arguments=KERNEL_ARGUMENTS,
                )
        except PapermillExecutionError as exc:
            message = (f"{name}.ipynb failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
                       f"the executed notebook is {output}")
            if exc.ename in _data_error_names():
                raise NotebookDataError("", message) from None
            raise NotebookFailed(message) from None
        _relative_papermill_paths(output)
        print(f"[{name}] done in {_minutes(time.perf_counter() - notebook_started)}", flush=True)
    print(f"run: {len(notebooks)} notebooks in {_minutes(time.perf_counter() - started)} "
          f"(wall time, from the first notebook's start)", flush=True)
    if publish_dir is not None:
        for path in publish_notebooks(run_dir / "notebooks", publish_dir):
            print(f"published: {path}", flush=True)
    return run_dir


def _relative_paths(notebook) -> None:
    """papermill's ``input_path`` and ``output_path`` in ``notebook``'s metadata, made relative to
    the repository (:func:`localizer.data.download.display_path`): papermill records them as given, and
    the runner gives absolute paths."""
    meta = notebook.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key) and Path(meta[key]).is_absolute():  # a relative one is made already
            meta[key] = display_path(meta[key])


def _relative_papermill_paths(path: Path) -> None:
    """:func:`_relative_paths` of the executed notebook at ``path``, rewritten in place."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    _relative_paths(notebook)
    nbformat.write(notebook, path)


def publish_notebooks(source_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Copy the executed notebooks of ``source_dir`` into ``out_dir`` for reading without running
    anything (on a repository page or with nbconvert): without widget outputs and widget state
    (stale progress bars) and with papermill's input and output paths relative to the repository.
    Returns the written paths. A notebook already in ``out_dir`` is replaced: that folder is the
    published copy, regenerated as a whole (``make report``).

    Raises:
        FileNotFoundError: ``source_dir`` holds none of :data:`NOTEBOOKS`.
    """
    import nbformat

    sources = [Path(source_dir) / f"{name}.ipynb" for name in NOTEBOOKS]
    sources = [path for path in sources if path.exists()]
    if not sources:
        raise FileNotFoundError(f"{source_dir} holds no executed notebook ({', '.join(NOTEBOOKS)})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        notebook = nbformat.read(source, as_version=4)
        notebook.metadata.pop("widgets", None)
        _relative_paths(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = [out for out in cell.outputs if WIDGET_MIME not in out.get("data", {})]
        target = out_dir / source.name
        nbformat.write(notebook, target)
        written.append(target)
    return written


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
