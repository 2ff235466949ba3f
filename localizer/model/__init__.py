"""Model: backbone + head, and each head's loss.

``weights`` (ImageNet and local weights files), ``backbones`` (the CNNs and the input scaling each
expects), ``heads`` (the box heads: forward, loss and prediction behind one interface), ``geometry`` (where a
head's outputs put a box: soft-argmax, boxes from a cell's edge distances), ``detection``
(which animals the ``largest`` head detects and which it predicts), ``losses`` (box losses), ``models``
(:class:`~localizer.model.models.BoxRegressor`, :func:`~localizer.model.models.build_model`).
Imports the bottom helpers and :mod:`localizer.recipe`'s names; never ``data`` or ``engine``.
"""
