"""DVC stage `pretrain@<arch>`: a thin entry point; the work is done by `satsr pretrain <arch>` (satsr.cli).

Usage: python stages/pretrain.py ARCH [options of `satsr pretrain --help`]
"""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
