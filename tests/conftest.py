"""Shared fixtures for the localizer tests.

* ``synthetic_data``: the synthetic dataset of :mod:`localizer.data.synthetic` (every layout), made once per
  session in a temporary folder. The tests that need no real photos use it, so ``make test`` passes on
  a fresh clone with nothing beside it.
* ``shared_data``: the real photos in ``../shared/data`` beside the project (lion, Oxford-IIIT Pet
  sample). Tests that use it are *skipped*, with the reason in the summary (``-rs``), when the folder
  is missing; with ``LOCALIZER_REQUIRE_REAL_DATA=1`` (set by ``.ci/run``) they *fail* instead, so CI
  can never pass by skipping them.
"""

import os
from pathlib import Path

import pytest

from localizer.data.synthetic import make_synthetic_dataset

#: Environment variable that makes the real-data tests required (CI sets it).
REQUIRE_REAL_DATA = "LOCALIZER_REQUIRE_REAL_DATA"

#: The real data folder, beside the project root.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require_shared_data(path: Path = SHARED_DATA) -> Path:
    """``path`` when it is a folder; otherwise skip the test, or fail it when the real data is required."""
    if path.is_dir():
        return path
    if os.environ.get(REQUIRE_REAL_DATA) == "1":
        pytest.fail(f"real data {path} is missing and {REQUIRE_REAL_DATA}=1 requires it", pytrace=False)
    pytest.skip(f"real data not run: {path} is missing (the lion and Oxford-IIIT Pet sample photos lie "
                f"there where the course provides them beside the clone, and in CI; set {REQUIRE_REAL_DATA}=1 to require them)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder ``../shared/data`` (see the module docstring: skipped or failed when missing)."""
    return require_shared_data()


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A folder with the synthetic dataset in every layout: ``yolo/``, ``voc/``, ``coco/``, ``csv/``."""
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root)
    return root
