"""DVC stage `source`: a thin entry point; the work is done by `satsr source` (satsr.cli)."""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["source", *sys.argv[1:]]))
