"""The published copies of a run: its executed notebooks for reading (``run --publish report``)
and its four report figures (``run --figures figures``), as ``make report`` makes them.

Published notebooks are read without running anything (on a repository page or with nbconvert), so
they lose what only a live frontend shows (widgets: stale progress bars) and the paths of one
machine (papermill's input and output paths, made relative to the repository).
"""

from __future__ import annotations

from pathlib import Path

from localizer.data.download import display_path
from localizer.files import copy_file, write_notebook

#: The numbered notebooks, in the order they run.
NOTEBOOKS = (
    "01_data_exploration",
    "02_preprocessing_and_split",
    "03_model_and_training",
    "04_evaluation_and_inference",
)

#: Output types that only a live frontend can show (a tqdm bar's widget): a static view (nbconvert,
#: a repository page) shows their stale text, so published notebooks drop them.
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _relative_paths(notebook) -> None:
    """papermill's ``input_path`` and ``output_path`` in ``notebook``'s metadata, made relative to
    the repository (:func:`localizer.data.download.display_path`): papermill records them as given, and
    the runner gives absolute paths."""
    meta = notebook.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key) and Path(meta[key]).is_absolute():  # a relative one is made already
            meta[key] = display_path(meta[key])


def relative_papermill_paths(path: Path) -> None:
    """:func:`_relative_paths` of the executed notebook at ``path``, rewritten in place."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    _relative_paths(notebook)
    write_notebook(notebook, path, replace=True)


def published_paths(out_dir: str | Path) -> list[Path]:
    """Where :func:`publish_notebooks` writes the notebooks in ``out_dir``."""
    return [Path(out_dir) / f"{name}.ipynb" for name in NOTEBOOKS]


def publish_notebooks(source_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy the executed notebooks of ``source_dir`` into ``out_dir`` for reading without running
    anything (on a repository page or with nbconvert): without widget outputs and widget state
    (stale progress bars) and with papermill's input and output paths relative to the repository.
    Returns the written paths. A notebook already in ``out_dir`` is replaced only with ``overwrite``
    (``make report`` regenerates ``report/`` as a whole).

    Raises:
        FileNotFoundError: ``source_dir`` holds none of :data:`NOTEBOOKS`.
        FileExistsError: a notebook exists in ``out_dir`` and ``overwrite`` is False.
    """
    import nbformat

    sources = [Path(source_dir) / f"{name}.ipynb" for name in NOTEBOOKS]
    sources = [path for path in sources if path.exists()]
    if not sources:
        raise FileNotFoundError(f"{source_dir} holds no executed notebook ({', '.join(NOTEBOOKS)})")
    out_dir = Path(out_dir)
    written = []
    for source in sources:
        notebook = nbformat.read(source, as_version=4)
        notebook.metadata.pop("widgets", None)
        _relative_paths(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = [out for out in cell.outputs if WIDGET_MIME not in out.get("data", {})]
        written.append(write_notebook(notebook, out_dir / source.name, replace=overwrite))
    return written


def figure_paths(out_dir: str | Path) -> list[Path]:
    """Where :func:`copy_figures` writes the four report figures in ``out_dir``."""
    from localizer.report.plots import FIGURE_NAMES

    return [Path(out_dir) / name for name in FIGURE_NAMES.values()]


def copy_figures(run_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy the four report figures (:data:`localizer.report.plots.FIGURE_NAMES`) from
    ``run_dir/figures/`` into ``out_dir`` (``make report``: the repository's ``figures/``);
    returns the written paths.

    Raises:
        FileNotFoundError: a figure is missing (notebooks 03 and 04 make them), naming it.
        FileExistsError: a figure exists in ``out_dir`` and ``overwrite`` is False.
    """
    from localizer.report.plots import FIGURE_NAMES

    sources = [Path(run_dir) / "figures" / name for name in FIGURE_NAMES.values()]
    missing = [display_path(path) for path in sources if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"cannot copy the report figures: {', '.join(missing)} missing "
                                "(notebook 03 draws figure 1, notebook 04 figures 2 to 4)")
    return [copy_file(path, Path(out_dir) / path.name, replace=overwrite) for path in sources]


def copy_outputs(figures_dir: str | Path | None, publish_dir: str | Path | None) -> list[tuple[str, Path]]:
    """The files ``run --figures`` and ``--publish`` write, as ``(option, path)`` pairs for
    :func:`localizer.files.check_outputs` (checked before the first notebook runs)."""
    figures = [("--figures", path) for path in figure_paths(figures_dir)] if figures_dir is not None else []
    return figures + ([("--publish", path) for path in published_paths(publish_dir)] if publish_dir is not None else [])


def make_copies(run_dir: str | Path, figures_dir: str | Path | None, publish_dir: str | Path | None,
                overwrite: bool = False) -> list[tuple[str, Path]]:
    """The copies of a finished run: its report figures into ``figures_dir`` (:func:`copy_figures`) and its
    executed notebooks into ``publish_dir`` (:func:`publish_notebooks`), each when given; returns
    ``("figure" or "published", path)`` pairs. Raises as those do."""
    copies = []
    if figures_dir is not None:
        copies += [("figure", path) for path in copy_figures(run_dir, figures_dir, overwrite)]
    if publish_dir is not None:
        copies += [("published", path) for path in publish_notebooks(Path(run_dir) / "notebooks", publish_dir,
                                                                       overwrite)]
    return copies
