"""DVC stage `evaluate@<arch>`: a thin entry point; the work is done by `satsr evaluate <arch>` (satsr.cli).

Usage: python stages/evaluate.py ARCH [options of `satsr evaluate --help`]
"""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
