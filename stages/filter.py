"""DVC stage `filter`: a thin entry point; the work is done by `satsr filter` (satsr.cli)."""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["filter", *sys.argv[1:]]))
