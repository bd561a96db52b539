"""``python -m rlm``: the ``rlm`` command, for an environment whose scripts are not on PATH."""

from rlm.cli import main

raise SystemExit(main())
