"""``python -m servegen``: the command line (see :mod:`servegen.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
