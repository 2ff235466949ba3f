"""Run the four numbered notebooks headless with papermill, sharing one run folder.

``python -m localizer run --data DATA --profile quick`` executes ``notebooks/01`` to ``04`` in order
into ``RUN/notebooks/`` with the same parameters, so the run folder ends up holding the executed
notebooks, ``manifest.csv``, ``history.csv``, ``checkpoints/``, ``metrics.json`` and ``figures/``.
A failing cell stops the run with the notebook's name and the cell's number.
"""

from __future__ import annotations

import fnmatch
import shutil
import time
from pathlib import Path

from .download import REPO_ROOT, ensure_data
from .errors import ConfigError, DataError

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = (
    "01_data_exploration",
    "02_preprocessing_and_split",
    "03_model_and_training",
    "04_evaluation_and_inference",
)

#: Parameter sets. ``report``: the course report's recipe. ``quick``: an offline-pretrained,
#: CPU-friendly recipe (EfficientNet-Lite0 at 160 px, GIoU + L1 loss, cosine schedule, flip TTA) that trains on the
#: lion data on 2 CPU cores in under 25 minutes. ``smoke``: a tiny subset in a couple of minutes
#: (tests and CI).
PROFILES: dict[str, dict] = {
    "report": {"image_size": 256, "epochs": 40, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4,
               "backbone": "resnet18", "weights": "imagenet", "loss": "smooth_l1", "tta": False},
    "quick": {"image_size": 160, "epochs": 20, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4,
              "backbone": "efficientnet_lite0", "weights": "imagenet", "loss": "giou", "schedule": "cosine",
              "tta": True},
    "smoke": {"image_size": 64, "epochs": 2, "batch_size": 16, "lr": 1e-3, "weight_decay": 1e-4,
              "backbone": "efficientnet_lite0", "weights": "imagenet", "loss": "smooth_l1", "tta": False,
              "subset": 64},
}

#: The three report figures, as the notebooks name them in ``RUN/figures/``.
REPORT_FIGURES = ("figure1_training_curves.png", "figure2_test_samples.png", "figure3_iou_histogram.png")


class NotebookFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


class NotebookDataError(DataError):
    """A notebook cell stopped on unusable data or a missing dataset (too few photos, an offline
    download, ...): the user's input, not a bug; the message names the notebook, the cell and the error."""


def _data_error_names() -> set[str]:
    """Class names of the exceptions that mean "unusable input" (:class:`localizer.errors.DataError`
    and its subclasses, missing files and datasets), as a failed notebook reports them."""
    from . import readers, split, training  # noqa: F401 - import the modules that define subclasses

    names, todo = {"FileNotFoundError", "DataUnavailableError"}, [DataError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


#: What a run folder holds (files, folders and patterns): anything else in a folder marks it as
#: not a localizer run, which ``--overwrite`` never deletes.
RUN_ENTRIES = ("notebooks", "figures", "checkpoints", "config.json", "manifest.csv", "data_report.csv",
               "history.csv", "metrics.json", "per_image_test.csv", "metrics_*.json", "metrics_*.csv", "*.tmp")


def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` (not recursive) that are not part of a localizer run (:data:`RUN_ENTRIES`),
    sorted; with files outside ``notebooks/``, ``figures/`` and ``checkpoints/`` of the run's own
    kinds checked too (``.ipynb``, ``.png``, ``.pt``). Empty for a run folder."""
    kinds = {"notebooks": ".ipynb", "figures": ".png", "checkpoints": ".pt"}
    foreign = []
    for entry in sorted(folder.iterdir()):
        if not any(fnmatch.fnmatch(entry.name, pattern) for pattern in RUN_ENTRIES):
            foreign.append(entry.name)
        elif entry.name in kinds:
            if not entry.is_dir():
                foreign.append(entry.name)
                continue
            suffix = kinds[entry.name]
            foreign += [f"{entry.name}/{p.relative_to(entry).as_posix()}" for p in sorted(entry.rglob("*"))
                        if not (p.is_file() and (p.suffix == suffix or p.name.endswith(suffix + ".tmp")))]
    return foreign


def _notebook_path(path: Path) -> str:
    """An absolute path as the notebooks take it: relative to the repository root (where they work)
    when it lies inside it, so that executed notebooks do not depend on where the clone is; else absolute."""
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


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
) -> Path:
    """Execute the notebooks in order with papermill; returns the run folder.

    Args:
        data: dataset folder (``None``: :func:`localizer.download.default_data`, downloaded when
            missing, see :func:`localizer.download.ensure_data`).
        profile: a key of :data:`PROFILES`; ``params`` override its values.
        run_dir: run folder (default :func:`default_run_dir`).
        figures_dir: copy the three report figures here too (e.g. ``figures/``).
        resume: continue in an existing run folder (a finished training is not repeated).
        overwrite: replace an existing run folder (only a localizer run, see :func:`foreign_entries`).

    Raises:
        localizer.errors.ConfigError: unknown profile, a parameter that no notebook's ``parameters`` cell has (a typo
            such as ``epoch`` would otherwise be ignored and the run would use the default), or a
            value :class:`localizer.training.TrainConfig` refuses (e.g. ``epochs="two"``).
        FileExistsError: ``run_dir`` is not empty and neither ``resume`` nor ``overwrite``, or
            ``overwrite`` on a folder that is not a localizer run (:func:`foreign_entries`): it is
            never deleted.
        NotebookDataError: a cell stopped on unusable data (e.g. too few usable photos to split).
        NotebookFailed: a cell raised anything else.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    known = set().union(*(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb")) for name in notebooks))
    unknown = set(params or {}) - known
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {sorted(unknown)}; the notebooks take {sorted(known)}")
    from .training import TrainConfig

    TrainConfig.from_dict({**PROFILES[profile], **(params or {})})  # a bad value fails now, not in notebook 03
    data = ensure_data(data).resolve()
    run_dir = Path(run_dir or default_run_dir(profile)).resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        if overwrite:
            foreign = foreign_entries(run_dir)
            if foreign:
                raise FileExistsError(
                    f"{run_dir} is not a localizer run folder (it holds {', '.join(foreign[:5])}"
                    f"{', ...' if len(foreign) > 5 else ''}); --overwrite replaces only run folders. "
                    "Choose another --run-dir")
            shutil.rmtree(run_dir)
        elif not resume:
            raise FileExistsError(f"run folder {run_dir} is not empty; pass --resume to continue it, "
                                  "--overwrite to replace it, or choose another --run-dir")
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    parameters = {**PROFILES[profile], **(params or {}), "data": _notebook_path(data),
                  "run_dir": _notebook_path(run_dir)}
    if figures_dir is not None:
        parameters["figures_dir"] = _notebook_path(Path(figures_dir).resolve())
    started = time.perf_counter()
    for name in notebooks:
        output = run_dir / "notebooks" / f"{name}.ipynb"
        if progress:
            print(f"[{name}] running -> {output}", flush=True)
        notebook_started = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(NOTEBOOK_DIR / f"{name}.ipynb"), str(output), parameters=parameters,
                cwd=str(REPO_ROOT), kernel_name="python3", progress_bar=False, log_output=progress,
            )
        except PapermillExecutionError as exc:
            message = (f"{name}.ipynb failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
                       f"the executed notebook is {output}")
            if exc.ename in _data_error_names():
                raise NotebookDataError("", message) from None
            raise NotebookFailed(message) from None
        print(f"[{name}] done in {_minutes(time.perf_counter() - notebook_started)}", flush=True)
    print(f"run: {len(notebooks)} notebooks in {_minutes(time.perf_counter() - started)} "
          f"(wall time, from the first notebook's start)", flush=True)
    return run_dir


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
