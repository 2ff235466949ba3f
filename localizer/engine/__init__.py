"""Engine: the run folder, the loops that train, evaluate and predict.

``numerics`` (device, precision, the model's input batch), ``run`` (the run folder, its one write
guard, loading a model), ``manifests`` (a recipe's split of a scan), ``profile_choice`` (the ``auto``
profile), ``checkpoints`` (reading them, the best epoch from the history, crash repair), ``schedule``
(a run's epochs and optimizer updates, its learning-rate schedule), ``training`` (the epoch loop),
``inference`` (a model's boxes and their confidence), ``evaluation`` (a split scored beside the
baselines), ``review`` (the flag threshold, the labels to check), ``prediction``. Imports ``data``,
``recipe``, ``model`` and the bottom helpers.
"""
