"""The operators' dashboard: static files served by the hub at ``/`` (see docs/dashboard.md).

``static/`` holds the page, the ES module client ``mtbridge.js`` and ``codes.json``, which
:mod:`bridge.dashboard.gen_codes` generates from :mod:`bridge.protocol.codes` so the browser never
carries hand-copied protocol numbers.
"""

from __future__ import annotations

__all__: list[str] = []
