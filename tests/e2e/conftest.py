"""Session fixture: one launched stack shared by the end-to-end tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    data_dir = Path(tempfile.mkdtemp(prefix="releasegate-e2e-"))
    s = Stack(data_dir)
    s.start()
    try:
        yield s
    finally:
        if s.process is not None:
            s.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
