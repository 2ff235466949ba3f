"""Progress bars: :mod:`tqdm.auto` (a widget in JupyterLab, text in a terminal), switched off for
headless runs by tqdm's own ``TQDM_DISABLE`` variable.

tqdm (>= 4.66) reads ``TQDM_*`` environment variables as the defaults of its arguments, once, when it
is imported (``tqdm.utils.envwrap``): ``TQDM_DISABLE`` becomes the default of ``disable``, converted
with ``bool`` of its text, so any non-empty value (``0`` included) switches the bars off. Two things
keep localizer from leaving it all to tqdm: ``progress=False`` must turn a bar off whatever the
environment says, and the notebook bar that :mod:`tqdm.auto` picks in a Jupyter kernel replaces a
missing ``disable`` by False, dropping that default. So every bar of the package is made here, with
``disable`` = not ``show``, or tqdm's own default (:func:`bars_disabled`).
:mod:`localizer.report.runner` sets ``TQDM_DISABLE=1`` for the notebooks it executes: a bar in a
headless kernel is a widget nobody sees, whose last state would stay in the executed notebook as a
stale ``0%| | 0/54`` line.
"""

from __future__ import annotations

import inspect
import sys

from tqdm.auto import tqdm
from tqdm.contrib.concurrent import thread_map
from tqdm.notebook import tqdm as notebook_tqdm
from tqdm.std import tqdm as std_tqdm


def bars_disabled() -> bool:
    """True when tqdm's defaults switch progress bars off (``TQDM_DISABLE`` set when tqdm was
    imported): the default of ``disable`` as tqdm parsed it, read from its signature."""
    return bool(inspect.signature(std_tqdm.__init__).parameters["disable"].default)


def progress_bar(iterable=None, show: bool = True, **kwargs) -> tqdm:
    """A :class:`tqdm.auto.tqdm` over ``iterable`` (``kwargs`` as tqdm's), shown when ``show`` and
    not :func:`bars_disabled`.

    A bar asked to vanish when done (``leave=False``) does so only on a terminal or as a notebook
    widget. Written to a file or a pipe (a log, ``| tee``), tqdm's erasing leaves the line without
    its newline, and the next printed line (a table) would continue it; there the bar stays as a
    last line of its own.
    """
    if kwargs.get("leave") is False and not _erasable(kwargs.get("file")):
        kwargs["leave"] = True
    return tqdm(iterable, disable=not show or bars_disabled(), **kwargs)


def _erasable(file) -> bool:
    """Whether a bar written to ``file`` (``None``: standard error, tqdm's default) can erase itself:
    a notebook widget, or text on a terminal."""
    if issubclass(tqdm, notebook_tqdm):  # tqdm.auto chose the widget: a Jupyter kernel
        return True
    file = sys.stderr if file is None else file
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed file
        return False


def progress_thread_map(fn, items, show: bool = True, **kwargs) -> list:
    """:func:`tqdm.contrib.concurrent.thread_map` of ``fn`` over ``items`` with a bar shown as by
    :func:`progress_bar`; ``kwargs`` as thread_map's (``max_workers``, ``desc``, ...)."""
    return thread_map(fn, items, disable=not show or bars_disabled(), **kwargs)
