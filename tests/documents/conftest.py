"""Documents made once per session by real writers (``makers``), shared by the document tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import makers


@pytest.fixture(scope="session")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of every format, as a researcher drops one into a notebook."""
    return makers.folder(tmp_path_factory.mktemp("papers"))
