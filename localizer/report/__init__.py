"""Report: what the notebooks show, the commands that run and compare them.

``photos`` (photo grids with boxes, the photos a figure shows, saving, :func:`~localizer.report.photos.show`),
``plots`` (the report's charts), ``exploration`` (box statistics of a data set), ``narration`` (the
notebooks' text that depends on the recipe), ``tables`` (scores as text tables), ``results`` (one call
that scores a run for notebook 04), ``confidence`` (the label-review gallery), ``notebook_runs``
(the notebooks' folders: a run per recipe), ``runner`` (``run``: the four notebooks through
papermill), ``publish`` (executed notebooks for reading, ``report/``), ``compare`` and ``several``
(the ``compare`` and ``several-animals`` commands). Imports ``engine``, ``model``, ``recipe``, ``data`` and the
bottom helpers.
"""
