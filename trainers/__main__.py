"""``python -m trainers <method> [options]`` (see :mod:`trainers.core.cli`)."""

from trainers.core.cli import main

raise SystemExit(main())
