"""Turn executed smoke notebooks into the committed expectations of ``tests/test_notebooks.py``.

Usage (what ``make notebook-expectations`` runs)::

    python tests/notebooks/keep_checked_outputs.py build/expectations/notebooks/*.ipynb --out tests/notebooks

Keeps the outputs of the cells marked ``# NBVAL_CHECK_OUTPUT`` (the values compared: counts,
split sizes, parameter counts, metric names) and clears every other output (and its execution
count), the papermill timings and the progress-bar widget state, so the committed files are small
and their diffs show only what changed.
"""

import argparse
from pathlib import Path

import nbformat

MARK = "# NBVAL_CHECK_OUTPUT"


def keep_checked_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Clear outputs of unmarked cells and volatile metadata, in place; returns the notebook."""
    notebook.metadata.pop("papermill", None)
    notebook.metadata.pop("widgets", None)  # tqdm progress-bar state
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if not cell.source.lstrip().startswith(MARK):
            cell.outputs = []
            cell.execution_count = None  # as never run (nbval, too, skips such a cell)
    return notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the expectations")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.notebooks:
        notebook = keep_checked_outputs(nbformat.read(path, as_version=4))
        nbformat.write(notebook, args.out / path.name)
        print(f"expectation: {args.out / path.name}")


if __name__ == "__main__":
    main()
