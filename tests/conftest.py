"""Shared fixtures for the localizer tests."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder ``../shared/data`` beside the project; fails (never skips) when missing."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.fail(
            f"real data folder {path} is missing: the data-layer tests need ../shared/data "
            "(lion/ and oxford-pets-sample/) beside the project root",
            pytrace=False,
        )
    return path
