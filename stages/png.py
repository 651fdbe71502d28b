"""DVC stage `png`: a thin entry point; the work is done by `satsr png` (satsr.cli)."""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["png", *sys.argv[1:]]))
