"""The operators' dashboard: static files served by the hub at ``/`` (see docs/dashboard.md).

``static/`` holds the page, ``codes.json``, which :mod:`bridge.dashboard.gen_codes` generates from
:mod:`bridge.protocol.codes` so the browser never carries hand-copied protocol numbers, and the
JavaScript client ``mtbridge.js`` with its MessagePack codec ``msgpack.js``: copies of the npm
package in ``clients/js`` written by ``npm run sync`` there (tests/jsclient fails when stale).
"""

from __future__ import annotations

__all__: list[str] = []
