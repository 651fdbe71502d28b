"""DVC stage `natural`: a thin entry point; the work is done by `satsr natural` (satsr.cli)."""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["natural", *sys.argv[1:]]))
