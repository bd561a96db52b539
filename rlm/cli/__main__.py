"""``python -m rlm.cli``: the ``rlm`` command."""

from rlm.cli import main

raise SystemExit(main())
