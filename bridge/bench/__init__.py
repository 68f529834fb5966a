"""Benchmarks: `mtbridge bench` and the peer comparison.

The harness (Python) starts the server under test pinned to one core and drives it with
an epoll load generator in C (bench/loadgen/loadgen.c, compiled on first use) pinned to
the other. `bridge.bench.runner.run` runs what `bridge.cli.bench` parsed. See
docs/benchmarks.md for the method and the recorded figures.
"""

from __future__ import annotations

__all__: list[str] = []
