"""The workflow's bytecode is written once, explicitly, even where writing bytecode is off:
the sandbox imports ``workflows/release.py`` afresh for every run (issue 15)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

import workflows.release
from services.worker.main import precompile_workflow


def test_the_workflow_is_compiled_once_even_when_bytecode_writing_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    cached = Path(importlib.util.cache_from_source(workflows.release.__file__))
    cached.unlink(missing_ok=True)
    assert precompile_workflow()
    assert cached.is_file()
    assert cached.stat().st_mtime >= os.stat(workflows.release.__file__).st_mtime
