"""``python -m rlm``: the ``rlm`` command, for an environment whose scripts are not on PATH."""

from rlm.cli import main

if __name__ == "__main__":  # imported (by a tool that walks the package), it does nothing
    raise SystemExit(main())
