"""Fixtures for the MQL5 harness tests: building programs and running them."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "harness"))

from build import DEFAULT_BUILD_DIR, build  # noqa: E402

REPO = HERE.parents[1]
PROGRAMS = HERE / "programs"
INCLUDE = REPO / "mql5" / "Include"
EXPERTS = REPO / "mql5" / "Experts"


@pytest.fixture(scope="session")
def mql5_build() -> Callable[..., Path]:
    """Translate and compile an MQL5 program (cached in tests/mql5/build by content hash)."""

    def _build(source: Path, *, sanitize: bool = True) -> Path:
        return build(source, DEFAULT_BUILD_DIR, sanitize=sanitize)

    return _build


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
