"""DVC stage `finetune@<arch>`: a thin entry point; the work is done by `satsr finetune <arch>` (satsr.cli).

Usage: python stages/finetune.py ARCH [options of `satsr finetune --help`]
"""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", *sys.argv[1:]]))
