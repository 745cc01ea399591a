"""``python -m protoviz`` (and ``torchrun ... -m protoviz``): the command line."""

from protoviz.cli import main

raise SystemExit(main())
