"""Run the four numbered notebooks headless with papermill, sharing one run folder.

``python -m localizer run --data DATA --profile quick`` executes ``notebooks/01`` to ``04`` in order
into ``RUN/notebooks/`` with the same parameters, so the run folder ends up holding the executed
notebooks, ``manifest.csv``, ``history.csv``, ``checkpoints/``, ``metrics.json`` and ``figures/``.
A failing cell stops the run with the notebook's name and the cell's number.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .download import REPO_ROOT, ensure_data
from .errors import ConfigError

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
        overwrite: delete an existing run folder first.

    Raises:
        localizer.errors.ConfigError: unknown profile, a parameter that no notebook's ``parameters`` cell has (a typo
            such as ``epoch`` would otherwise be ignored and the run would use the default), or a
            value :class:`localizer.training.TrainConfig` refuses (e.g. ``epochs="two"``).
        FileExistsError: ``run_dir`` is not empty and neither ``resume`` nor ``overwrite``.
        NotebookFailed: a cell raised.
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
            shutil.rmtree(run_dir)
        elif not resume:
            raise FileExistsError(f"run folder {run_dir} is not empty; pass --resume to continue it, "
                                  "--overwrite to replace it, or choose another --run-dir")
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    parameters = {**PROFILES[profile], **(params or {}), "data": _notebook_path(data),
                  "run_dir": _notebook_path(run_dir)}
    if figures_dir is not None:
        parameters["figures_dir"] = _notebook_path(Path(figures_dir).resolve())
    for name in notebooks:
        output = run_dir / "notebooks" / f"{name}.ipynb"
        if progress:
            print(f"[{name}] running -> {output}", flush=True)
        try:
            papermill.execute_notebook(
                str(NOTEBOOK_DIR / f"{name}.ipynb"), str(output), parameters=parameters,
                cwd=str(REPO_ROOT), kernel_name="python3", progress_bar=False, log_output=progress,
            )
        except PapermillExecutionError as exc:
            raise NotebookFailed(
                f"{name}.ipynb failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
                f"the executed notebook is {output}"
            ) from None
    return run_dir
