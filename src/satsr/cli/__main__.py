"""`python -m satsr.cli`: the `satsr` command without its console script (used by tests and subprocess workers)."""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main())
