"""``python -m protoviz.cli``: the command line (same as ``python -m protoviz``)."""

from protoviz.cli import main

raise SystemExit(main())
