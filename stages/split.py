"""DVC stage `split`: a thin entry point; the work is done by `satsr split` (satsr.cli)."""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["split", *sys.argv[1:]]))
