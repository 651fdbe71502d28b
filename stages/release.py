"""DVC stage `release`: register the committed release weights in MLflow (satsr-release@release) so
that `select` ranks them with the trained architectures. Training them is `satsr release all`, never
a pipeline stage (it reads ../shared and takes 1-2 h).

Usage: python stages/release.py
"""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["release", "register", *sys.argv[1:]]))
