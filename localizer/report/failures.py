"""Why a notebook of the ``run`` command failed, in one message: a cell that raised
(:class:`NotebookFailed`), one that stopped on unusable data (:class:`NotebookDataError`), or a kernel
that died (:class:`KernelDied`, with the cell that was running, the likely cause and how to continue)."""

from __future__ import annotations

from pathlib import Path

from localizer.data.download import display_path
from localizer.errors import DataError


class NotebookFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


class KernelDied(NotebookFailed):
    """A notebook's kernel died (killed by the system, e.g. by the out-of-memory killer); the
    message names the notebook, the cell, the likely cause and how to continue."""


class NotebookDataError(DataError):
    """A notebook cell stopped on unusable data or a missing dataset (too few photos, an offline
    download, ...): the user's input, not a bug; the message names the notebook, the cell and the error."""


def data_error_names() -> set[str]:
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


def dead_kernel_message(name: str, run_dir: Path, output: Path) -> str:
    """What :class:`KernelDied` says: the notebook and the cell that was running (papermill marks it
    in the executed notebook it saves before each cell), the likely cause and how to continue."""
    import nbformat

    cell = ""
    if output.is_file():
        running = [c for c in nbformat.read(output, as_version=4).cells
                   if c.get("metadata", {}).get("papermill", {}).get("status") == "running"]
        if running and running[0].source.strip():
            cell = f" in the cell `{running[0].source.strip().splitlines()[0]}`"
    return (f"{name}.ipynb stopped: its kernel died{cell}. The system ended the process, most often because "
            f"the machine ran out of memory. Use less: fewer data-loading workers (-p workers=0), or, in a "
            f"new run folder, a smaller batch (-p batch_size=16) or image size. "
            f"python -m localizer run --run-dir {display_path(run_dir)} --resume -p workers=0 continues this run "
            f"with its recipe (training from the last finished epoch, checkpoints/last.pt). "
            f"The executed notebook so far is {output}")
