"""The ``auto`` profile: not a recipe but the choice of one by the size of the data, for ``run`` (its default),
``make run``, ``train`` and notebook 02.

``quick`` was chosen on the 1,698 lion training photos and trains them in about 13 minutes on 2 CPU cores.
On a few hundred photos the ``small`` profile (``quick`` at 160 px with the ``largest`` head, 1,800 updates
in batches of 8, keeping the last epoch) scores better (docs/ablations.md, rows 35, 37, 38, 41, 53 and 54);
``quick`` keeps the larger sets it was chosen on. So ``auto`` counts the training photos of the split the run will
make and takes ``small`` below :data:`SMALL_DATA_TRAIN`.
"""

from __future__ import annotations

import json

from localizer.recipe import PROFILES, recipe_for

#: The name that stands for :func:`profile_for_size`'s choice wherever a profile is named.
AUTO_PROFILE = "auto"
#: ``auto`` chooses ``small`` below this many training photos (about 715 photos in a 70/15/15 split), else ``quick``:
#: ``small`` was chosen on training splits of 70 to 419 photos, ``quick`` on 1,698.
SMALL_DATA_TRAIN = 500


def profile_for_size(n_train: int) -> tuple[str, str]:
    """The profile ``auto`` stands for on ``n_train`` training photos, and why, in words: ``("small", ...)``
    below :data:`SMALL_DATA_TRAIN`, else ``("quick", ...)``. E.g. 140 -> ``small``, 1,698 -> ``quick``."""
    if n_train < SMALL_DATA_TRAIN:
        small = PROFILES["small"]
        return "small", (f"{n_train:,} training photos, fewer than {SMALL_DATA_TRAIN}: profile small (quick at "
                         f"{small['image_size']} px with the largest-animal head, {small['steps']:,} updates in "
                         f"batches of {small['batch_size']} keeping the {small['keep']} epoch, better on each small "
                         "data set tried)")
    return "quick", (f"{n_train:,} training photos, {SMALL_DATA_TRAIN} or more: profile quick "
                     f"({PROFILES['quick']['image_size']} px, within about 15 minutes on 2 CPU cores)")


def choose_profile(profile: str, scan=None, **values) -> tuple[str, str | None]:
    """The profile to train: ``profile`` itself, or for :data:`AUTO_PROFILE` the one the size of the training split
    calls for (:func:`profile_for_size`).

    Args:
        profile: a key of :data:`localizer.recipe.PROFILES`, or ``"auto"``.
        scan: the scan of the data (:class:`localizer.data.validation.ScanResult`; needed for ``auto`` only):
            ``auto`` splits it as the run will (:func:`localizer.engine.manifests.make_manifest`, with the recipe
            ``values``: ``subset``, ``split``, ``seed``, ``fractions``) and counts the training photos, so the
            count is the one :meth:`localizer.engine.run.Run.create` will split; it reads no photo again.
        values: recipe fields besides the scan's own (:data:`localizer.data.scans.SCAN_FIELDS`), e.g. the ``-p``
            values.

    Returns:
        ``(profile, why)``: the profile, and for ``auto`` the reason in words (the count and the rule, and which of
        ``values`` replace the chosen profile's own, e.g. ``; your values replace its own: steps=150``), else None.

    Raises:
        localizer.errors.ConfigError: an unknown field or a bad value (:func:`localizer.recipe.recipe_for`).
        localizer.data.split.NotEnoughDataError: as :func:`localizer.engine.manifests.make_manifest`, for ``auto``.
    """
    from localizer.engine.manifests import make_manifest  # pandas: not for the command line's parser

    if profile != AUTO_PROFILE:
        return profile, None
    manifest = make_manifest(recipe_for("quick", **values, **scan.settings), scan)
    chosen, why = profile_for_size(int((manifest["split"] == "train").sum()))
    # the why-line describes the profile: say which of its values this run's recipe changes
    own, mine = recipe_for(chosen), recipe_for(chosen, **values)
    changed = [f"{name}={json.dumps(getattr(mine, name))}" for name in values
               if getattr(mine, name) != getattr(own, name)]
    return chosen, why + (f"; your values replace its own: {', '.join(changed)}" if changed else "")
