"""Model: backbone + head, and each head's loss.

``weights`` (ImageNet and local weights files), ``heads`` (the box heads: forward, loss and
prediction behind one interface), ``losses`` (box losses), ``models`` (backbones,
:class:`~localizer.model.models.BoxRegressor`, :func:`~localizer.model.models.build_model`).
Imports the bottom helpers and :mod:`localizer.recipe`'s names; never ``data`` or ``engine``.
"""
