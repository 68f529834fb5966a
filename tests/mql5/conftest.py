"""Fixtures for the MQL5 harness tests: building programs (paths and shared pieces are in
tests/support/mql5.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.mql5 import HARNESS

sys.path.insert(0, str(HARNESS))  # the harness is a directory of scripts, not a package

from build import DEFAULT_BUILD_DIR, build


@pytest.fixture(scope="session")
def mql5_build() -> Callable[..., Path]:
    """Translate and compile an MQL5 program (cached in tests/mql5/build by content hash)."""

    def _build(source: Path, *, sanitize: bool = True) -> Path:
        return build(source, DEFAULT_BUILD_DIR, sanitize=sanitize)

    return _build
