"""localizer: single-object localization — regress the one bounding box of the primary animal in a photo.

Modules, one job each: :mod:`~localizer.boxes` (box conventions), :mod:`~localizer.imageio` (safe
decoding), :mod:`~localizer.readers` (dataset formats), :mod:`~localizer.validation` (check-data),
:mod:`~localizer.split` (seeded split, manifest), :mod:`~localizer.transforms` (torchvision v2),
:mod:`~localizer.cache` (decode-once cache), :mod:`~localizer.data` (datasets, loaders),
:mod:`~localizer.models`, :mod:`~localizer.metrics`, :mod:`~localizer.training`,
:mod:`~localizer.evaluation`, :mod:`~localizer.prediction`, :mod:`~localizer.plots`,
:mod:`~localizer.runner` (papermill), :mod:`~localizer.cli`.
"""

__version__ = "0.1.0"
