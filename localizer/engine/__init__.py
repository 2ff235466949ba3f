"""Engine: the run folder, the loops that train, evaluate and predict.

``transforms`` (the per-image pipeline), ``cache`` (decode-once images), ``datasets`` (datasets and
loaders), ``batch_augment`` (augmentation on whole batches), ``numerics`` (device, precision),
``run`` (the run folder, its one write guard, loading a model), ``checkpoints`` (reading them, the
best epoch from the history, crash repair), ``schedule`` (a run's epochs and optimizer updates, its
learning-rate schedule), ``training`` (the epoch loop), ``inference``,
``evaluation``, ``prediction``. Imports ``data``, ``recipe``, ``model`` and the bottom helpers.
"""
