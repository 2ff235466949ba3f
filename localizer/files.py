"""Every file localizer writes is written here, under one rule:

* an output never replaces one of the command's inputs, ``--overwrite`` or not;
* it replaces an existing file only when asked: ``--overwrite`` for what a command writes where the
  user points it, ``replace=True`` for a file localizer keeps of its own (a run folder's checkpoints
  and history, the decode cache, the threshold a run keeps beside its metrics);
* where the outputs go is checked before the work (:func:`check_outputs`): an existing file, an input,
  two outputs with one name, or a folder that cannot be written (a read-only course drive, a Kaggle
  input) is refused in one line that says what to do, before a photo is scored.

Writes are atomic: a temporary file in the same folder, then a rename over the target, so a crash or a
kill leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from localizer.errors import DataError


class OutputError(DataError):
    """An output that may not be written where it was asked for (``reason``: ``would-overwrite-input``,
    ``output-collision`` or ``read-only-output``)."""


# ---------------------------------------------------------------------------------------- the rule
def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Inputs:
    """The files and folders a command reads, indexed once to tell whether an output would replace one:
    the same file however the path is spelt (symlinks and ``..`` followed, or a hard link of it), or an
    existing file inside an input folder."""

    def __init__(self, paths: Iterable[Path | str]):
        paths = [Path(path) for path in paths]
        self.by_path = {path.resolve(): path for path in paths}
        self.by_identity = {identity: path for path in paths if (identity := _identity(path)) is not None}
        self.folders = [(path.resolve(), path) for path in paths if path.is_dir()]

    def written_over(self, output: Path | str) -> Path | None:
        """The input that writing ``output`` would replace, or None."""
        output = Path(output)
        resolved, identity = output.resolve(), _identity(output)
        hit = self.by_path.get(resolved) or (self.by_identity.get(identity) if identity is not None else None)
        if hit is None and os.path.lexists(output):
            hit = next((given for folder, given in self.folders if resolved.is_relative_to(folder)), None)
        return hit


#: The name start of :func:`writable_folder`'s probe file, which lives a moment (another process may see it).
PROBE_PREFIX = ".localizer-probe-"


def writable_folder(path: Path | str) -> Path | None:
    """The nearest existing folder above ``path`` when a file can be created there (tried: a temporary
    file is made and removed), else None (read-only, no permission, or a file where a folder would have
    to be)."""
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        descriptor, probe = tempfile.mkstemp(dir=folder, prefix=PROBE_PREFIX)
    except OSError:
        return None
    os.close(descriptor)
    os.unlink(probe)
    return folder


def check_outputs(outputs: Iterable[tuple[str, Path | str]], inputs: Iterable[Path | str] = (),
                  overwrite: bool = False) -> None:
    """The one check of a command's outputs, before its work.

    Args:
        outputs: ``(option, path)`` of every file the command will write, those beside the one named
            included (e.g. ``("--out", "m.json"), ("--out", "m.csv")``); ``option`` names the option to
            change in the messages.
        inputs: the files (or folders: every existing file under them) the command reads.
        overwrite: ``--overwrite``: an existing output that is no input may be replaced.

    Raises:
        OutputError: ``would-overwrite-input`` (never allowed), ``output-collision`` (two outputs with
            one path) or ``read-only-output`` (the folder cannot be written: choose the option elsewhere).
        FileExistsError: an output exists and ``overwrite`` is False.
    """
    outputs = [(option, Path(path)) for option, path in outputs]
    inputs = Inputs(inputs)
    seen: dict[Path, str] = {}
    for option, path in outputs:
        given = inputs.written_over(path)
        if given is not None:
            what = f"a file of {given}, which" if given.is_dir() else f"{given}, which"
            raise OutputError("would-overwrite-input", f"{option} {path} would be written over {what} the command "
                              f"reads; choose a {option} outside its inputs (--overwrite never applies to them)", path)
        key = path.resolve()
        if key in seen:
            raise OutputError("output-collision", f"{option} {path} would be written twice (also as the file "
                              f"{seen[key]} writes beside it); choose another {option}", path)
        seen[key] = option
    for option, path in outputs:
        if os.path.lexists(path) and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it, or another {option}")
        if writable_folder(path) is None:
            raise OutputError("read-only-output", f"cannot write here (the folder is read-only, or not a "
                              f"folder); pass {option} somewhere you can write", path)


# ---------------------------------------------------------------------------------------- writing
@contextmanager
def atomic_path(path: Path | str, *, replace: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write into; renamed over ``path`` when the block ends
    without an error (removed otherwise). Folders above ``path`` are made.

    Raises:
        FileExistsError: ``path`` exists and ``replace`` is False (nothing is written).
    """
    path = Path(path)
    if not replace and os.path.lexists(path):
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path | str, text: str, *, replace: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path. Raises as :func:`atomic_path`."""
    with atomic_path(path, replace=replace) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: Path | str, data: bytes, *, replace: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path. Raises as :func:`atomic_path`."""
    with atomic_path(path, replace=replace) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: Path | str, data: dict, *, replace: bool = False) -> Path:
    """Write ``data`` as indented JSON atomically (non-JSON values via ``str``); returns the path."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=str), replace=replace)


def write_csv(table: pd.DataFrame, path: Path | str, *, replace: bool = False) -> Path:
    """Write a table as CSV without its index, atomically; returns the path."""
    return atomic_write_text(path, table.to_csv(index=False), replace=replace)


def atomic_save(obj, path: Path | str, *, replace: bool = False) -> Path:
    """``torch.save`` atomically; returns the path."""
    with atomic_path(path, replace=replace) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def save_image(image, path: Path | str, *, replace: bool = False, **params) -> Path:
    """Save a PIL image atomically in the format its suffix names (``params`` as ``Image.save``'s)."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path, replace=replace) as tmp:
        image.save(tmp, format=Image.registered_extensions().get(path.suffix.lower()), **params)
    return path


def save_figure_file(fig, path: Path | str, fmt: str, *, replace: bool = False, **params) -> Path:
    """``fig.savefig`` into ``path`` in format ``fmt``, atomically."""
    with atomic_path(path, replace=replace) as tmp:
        fig.savefig(tmp, format=fmt, **params)
    return Path(path)


def copy_file(source: Path | str, path: Path | str, *, replace: bool = False) -> Path:
    """Copy ``source`` to ``path`` atomically (contents and permission bits); returns the path."""
    with atomic_path(path, replace=replace) as tmp:
        shutil.copy(source, tmp)
    return Path(path)


def write_notebook(notebook, path: Path | str, *, replace: bool = False) -> Path:
    """Write an nbformat notebook atomically; returns the path."""
    import nbformat

    with atomic_path(path, replace=replace) as tmp:
        nbformat.write(notebook, tmp)
    return Path(path)


@contextmanager
def appending(path: Path | str) -> Iterator:
    """``path`` opened for appending bytes (made when missing): a store of localizer's own that grows
    (the decode cache's data file); its index is written atomically after it."""
    with open(path, "ab") as f:
        yield f


@contextmanager
def locked(path: Path | str) -> Iterator[None]:
    """Hold an exclusive lock on the lock file ``path`` (made when missing, never truncated)."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
