"""Report: what the notebooks show and the command that runs them.

``plots`` (the figures), ``exploration`` (box statistics of a data set), ``narration`` (the
notebooks' text that depends on the recipe), ``runner`` (``run``: the four notebooks through
papermill). Imports ``engine``, ``model``, ``data`` and the bottom helpers.
"""
