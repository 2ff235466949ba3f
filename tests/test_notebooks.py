"""The notebooks as the course reads them: thin and parameterized; and executed once, as ``make run`` executes
them (the ``smoke`` profile through papermill, on the synthetic data): what the terminal shows, that the run
scans its photos once, and the values of the cells marked ``# NBVAL_CHECK_OUTPUT`` against the committed
expectations of ``tests/notebooks/`` (made by ``make notebook-expectations``)."""

import configparser
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from localizer.report.plots import FIGURE_NAMES
from localizer.report.publish import NOTEBOOKS, WIDGET_MIME

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_PATHS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTATIONS = ROOT / "tests" / "notebooks"
#: The mark of a cell whose output is compared with its expectation.
MARK = "# NBVAL_CHECK_OUTPUT"


def code_sources(path: Path) -> list[str]:
    """The code cells' sources, without the cell papermill injects."""
    notebook = nbformat.read(path, as_version=4)
    return [cell.source for cell in notebook.cells
            if cell.cell_type == "code" and "injected-parameters" not in cell.metadata.get("tags", [])]


@pytest.mark.parametrize("notebook", NOTEBOOK_PATHS, ids=lambda p: p.name)
def test_expectations_are_of_the_current_notebooks(notebook):
    """tests/notebooks/ holds executed copies of notebooks/ whose marked outputs the smoke run must give: a
    notebook changed without `make notebook-expectations` would leave them checking the old code."""
    expectation = EXPECTATIONS / notebook.name
    assert expectation.is_file(), f"{expectation} is missing: run make notebook-expectations"
    assert code_sources(expectation) == code_sources(notebook), \
        f"{expectation} is older than {notebook}: run make notebook-expectations"


@pytest.mark.parametrize("notebook", NOTEBOOK_PATHS, ids=lambda p: p.name)
def test_notebooks_are_thin(notebook):
    """No function or class definitions in notebooks (logic lives in localizer/; a dataset class
    defined in a notebook also breaks multi-worker loading), and one cell tagged parameters."""
    cells = nbformat.read(notebook, as_version=4).cells
    sources = [cell.source for cell in cells if cell.cell_type == "code"]
    assert not [s for s in sources if any(line.startswith(("def ", "class ")) for line in s.splitlines())]
    assert sum("parameters" in cell.metadata.get("tags", []) for cell in cells) == 1


@pytest.fixture(scope="module")
def smoke_run(synthetic_data, tmp_path_factory):
    """``python -m localizer run --profile smoke`` on the synthetic photos, as ``make run`` runs it: its run
    folder, and what it printed on stdout and stderr."""
    folder = tmp_path_factory.mktemp("smoke")
    done = subprocess.run([sys.executable, "-m", "localizer", "run", "--data", str(synthetic_data / "yolo"),
                           "--profile", "smoke", "--run-dir", str(folder / "run"),
                           "-p", f"cache_dir={folder / 'cache'}"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder / "run", done.stdout, done.stderr


def _printed(cell) -> str:
    """What a code cell showed as text: its streams and the plain text of its results."""
    return "".join(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "") + "\n"
                   for o in cell.get("outputs", []) if o.output_type != "error")


def _sanitized(text: str) -> str:
    """``text`` with the volatile parts (durations, paths, addresses) replaced, as tests/nbval_sanitize.cfg says
    (nbval's format: one section per pattern, ``regex`` and ``replace``)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "tests" / "nbval_sanitize.cfg")
    for section in config.sections():
        text = re.sub(config[section]["regex"], config[section]["replace"], text)
    return text


def test_the_terminal_shows_each_epoch_and_the_scores_and_no_kernel_warning(smoke_run):
    _, out, err = smoke_run
    # 35 training photos in batches of 16: 3 optimizer updates an epoch
    assert "plan: 2 epochs of 3 updates (6 updates: epochs=2, on 35 training photos in batches of 16)" in out
    assert "epoch 1/2 (step 3/6)  train loss" in out and "epoch 2/2 (step 6/6)  train loss" in out and "(done)" in out
    assert "pipeline check only (profile smoke" in out and "model scored without TTA" in out
    assert "without encryption" not in out + err


def test_a_run_scans_its_photos_once(smoke_run):
    """Notebook 01 scans the data; the split, the run folder and notebooks 03 and 04 read that scan."""
    run_dir, out, _ = smoke_run
    scans = {path.stem: [line for line in _printed_all(path).splitlines() if line.startswith("scan: ")]
             for path in (run_dir / "notebooks").glob("*.ipynb")}
    assert {name: len(lines) for name, lines in scans.items()} == {name: int(name == NOTEBOOKS[0])
                                                                     for name in NOTEBOOKS}
    assert scans[NOTEBOOKS[0]][0].startswith("scan: 52 photos of ")  # every photo found, decoded once
    assert sum(line.startswith("scan: ") for line in out.splitlines()) == 1  # nor did the runner scan


def _printed_all(path: Path) -> str:
    """What every code cell of an executed notebook showed as text."""
    return "".join(_printed(cell) for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")


def test_executed_notebooks_hold_no_progress_bars_and_relative_paths(smoke_run):
    run_dir, _, _ = smoke_run
    for path in (run_dir / "notebooks").glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        assert notebook.metadata["papermill"]["input_path"] == f"notebooks/{path.name}"
        for cell in notebook.cells:
            for output in cell.get("outputs", []):
                assert WIDGET_MIME not in output.get("data", {})
                assert "0%|" not in output.get("text", "")
    assert set(FIGURE_NAMES.values()) <= {p.name for p in (run_dir / "figures").iterdir()}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_marked_cells_print_their_expected_values(smoke_run, name):
    """The counts, split sizes, history columns, parameter counts and metric keys of the marked cells are the
    committed ones (after `make notebook-expectations`, `git diff tests/notebooks` shows what changed)."""
    run_dir, _, _ = smoke_run
    marked = [[_sanitized(_printed(cell)) for cell in nbformat.read(path, as_version=4).cells
               if cell.cell_type == "code" and cell.source.lstrip().startswith(MARK)]
              for path in (EXPECTATIONS / f"{name}.ipynb", run_dir / "notebooks" / f"{name}.ipynb")]
    expected, executed = marked
    assert expected and all(expected), f"tests/notebooks/{name}.ipynb has no marked output: make notebook-expectations"
    assert executed == expected
