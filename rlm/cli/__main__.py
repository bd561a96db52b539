"""``python -m rlm.cli``: the ``rlm`` command."""

from rlm.cli import main

if __name__ == "__main__":  # imported (by a tool that walks the package), it does nothing
    raise SystemExit(main())
