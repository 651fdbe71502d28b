"""DVC stage `tune@<arch>`: a thin entry point; the work is done by `satsr tune <arch>` (satsr.cli).

Usage: python stages/tune.py ARCH [options of `satsr tune --help`]
"""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
