"""Progress bars: :mod:`tqdm.auto` (a widget in JupyterLab, text in a terminal), switched off for
headless runs by tqdm's own ``TQDM_DISABLE`` variable; and the text lines of a training's progress
(:func:`epoch_line`, :func:`expected_time_line`, :func:`finished_lines`), which a headless run prints.

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


def epoch_line(row: dict, plan, seconds_left: float | None = None) -> str:
    """One line of training progress for a terminal or a static notebook, e.g. ``epoch  3/13
    (step 162/702)  train loss 0.4210  val loss 0.3012  val IoU 0.781  lr 9.0e-04  58 s  (9 min 40 s left)``.

    Args:
        row: a history row (:data:`localizer.engine.training.HISTORY_COLUMNS`).
        plan: the run's :class:`localizer.engine.schedule.TrainingPlan` (its epochs and optimizer updates).
        seconds_left: estimated time to the last epoch (:func:`time_left`); None leaves it out.
    """
    width, step_width = len(str(plan.epochs)), len(str(plan.updates))
    line = (f"epoch {int(row['epoch']):>{width}}/{plan.epochs} (step {int(row['step']):>{step_width}}/{plan.updates})"
            f"  train loss {row['train_loss']:.4f}  "
            f"val loss {row['val_loss']:.4f}  val IoU {row['val_iou']:.3f}  lr {row['lr']:.1e}  "
            f"{row['seconds']:.0f} s")
    if seconds_left is not None:
        line += f"  ({duration_text(seconds_left)} left)" if seconds_left else "  (done)"
    return line


def time_left(epoch_seconds: list[float], epochs_to_go: int) -> float:
    """Seconds to the last epoch: the mean of the epochs so far after the first (which also starts the loader's
    workers and sets up the kernels), or the first alone, times ``epochs_to_go``; the rate of
    :func:`expected_time_line`. E.g. ``time_left([3.5, 2.1, 2.3], 10)`` is 22.0."""
    steady = epoch_seconds[1:] or epoch_seconds
    return epochs_to_go * sum(steady) / len(steady)


def expected_time_line(plan, epoch_seconds: list[float]) -> str:
    """The training time to expect, printed after a run's second epoch: the two epochs' seconds plus the second's
    times the epochs to go, e.g. ``expected training time: about 8 min 25 s for 1,200 updates (0.42 s per update
    in epoch 2)``. The second epoch gives the rate because the first also starts the loader's workers and sets up
    the kernels.

    Args:
        plan: the run's :class:`localizer.engine.schedule.TrainingPlan`.
        epoch_seconds: the seconds of a new run's first two epochs (:func:`localizer.engine.training.train`'s; one
            gives the first alone as the rate).
    """
    done = len(epoch_seconds)
    total = sum(epoch_seconds) + time_left(epoch_seconds, plan.epochs - done)  # the epoch lines' rate
    return (f"expected training time: about {duration_text(total)} for {plan.updates:,} updates "
            f"({time_left(epoch_seconds, 1) / plan.updates_per_epoch:.2f} s per update in epoch {done})")


def count(n: int, noun: str) -> str:
    """``n`` and the noun in the number it takes: ``count(1, "epoch")`` is ``"1 epoch"``, ``count(13, "epoch")``
    ``"13 epochs"``, with thousands separators (``"1,400 updates"``)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def finished_lines(name: str, history: list[dict], plan, kept: dict, keep: str = "best") -> list[str]:
    """What training prints for the run ``name`` that has trained all its ``plan``'s epochs: that it has
    (with its ``kept`` history row, chosen by the recipe's ``keep``: :func:`localizer.engine.checkpoints.kept_row`),
    then its training log as it was printed, one :func:`epoch_line` per row of ``history``."""
    took = duration_text(sum(row["seconds"] for row in history))
    which = "best validation IoU" if keep == "best" else "kept the last epoch, validation IoU"
    return [f"run {name!r}: trained already ({len(history)}/{count(plan.epochs, 'epoch')}, {plan.updates} updates, "
            f"in {took}, {which} {kept['val_iou']:.3f} at epoch {kept['epoch']}); "
            "nothing to train. Its training log, from its history.csv:",
            *(epoch_line(row, plan) for row in history)]


def duration_text(seconds: float) -> str:
    """A duration for people, to the whole second: ``"3 s"``, ``"1 min 13 s"``, ``"2 h 5 min"``."""
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60} min"
