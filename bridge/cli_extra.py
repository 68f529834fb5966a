"""Registration of the subcommands that live in other packages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["REGISTRARS"]

REGISTRARS: list[Callable[[Any], None]] = []
