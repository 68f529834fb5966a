"""``python -m bridge.cli``: the ``mtbridge`` script without the installed entry point."""

from bridge.cli import main

raise SystemExit(main())
