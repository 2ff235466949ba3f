"""localizer: single-object localization — regress the one bounding box of the primary animal in a photo.

The package in the order data flows through it; each stage imports only the stages before it and
the bottom helpers (``tests/test_layout.py`` holds the rule):

==================  ==========================================================  =======================
folder / module     job                                                         imports
==================  ==========================================================  =======================
``data/``           find, decode, read, check and split the photos; datasets,   bottom helpers
                    cache, augmentation
``recipe``          :class:`~localizer.recipe.TrainConfig` and the profiles     ``data``
                    (no torch module)
``model/``          backbones, heads (each owns its forward and loss), head     ``recipe``
                    geometry, losses
``engine/``         run folder, checkpoints, numerics, training, evaluation,    ``data``, ``recipe``,
                    review, prediction: what computes                           ``model``
``report/``         figures, tables, notebook narration, ``run`` (papermill),   all of the above
                    analysis: what presents
``cli/``            ``python -m localizer ...``                                 everything
bottom helpers      ``boxes`` (box conventions and geometry), ``metrics`` (IoU, nothing of the package
                    accuracy), ``errors``, ``files`` (atomic writes),            but each other
                    ``progress`` (tqdm bars, a training's progress lines),
                    ``network``
==================  ==========================================================  =======================

Each stage's ``__init__`` lists its modules.
"""

__version__ = "0.1.0"
