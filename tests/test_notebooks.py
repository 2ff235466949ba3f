"""The notebooks as the course reads them: thin, parameterized, and checked by nbval against
committed expectations that are kept in step with them."""

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_sources(path: Path) -> list[str]:
    """The code cells' sources, without the cell papermill injects."""
    notebook = nbformat.read(path, as_version=4)
    return [cell.source for cell in notebook.cells
            if cell.cell_type == "code" and "injected-parameters" not in cell.metadata.get("tags", [])]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_expectations_run_the_current_notebooks(notebook):
    """tests/notebooks/ holds executed copies of notebooks/ that nbval re-executes: a notebook changed
    without `make notebook-expectations` would leave nbval checking the old code."""
    expectation = ROOT / "tests" / "notebooks" / notebook.name
    assert expectation.is_file(), f"{expectation} is missing: run make notebook-expectations"
    assert code_sources(expectation) == code_sources(notebook), \
        f"{expectation} is older than {notebook}: run make notebook-expectations"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_thin(notebook):
    """No function or class definitions in notebooks (logic lives in localizer/; a dataset class
    defined in a notebook also breaks multi-worker loading), and one cell tagged parameters."""
    cells = nbformat.read(notebook, as_version=4).cells
    sources = [cell.source for cell in cells if cell.cell_type == "code"]
    assert not [s for s in sources if any(line.startswith(("def ", "class ")) for line in s.splitlines())]
    assert sum("parameters" in cell.metadata.get("tags", []) for cell in cells) == 1
