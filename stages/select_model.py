"""DVC stage `select`: a thin entry point; the work is done by `satsr select` (satsr.cli).

Not named select.py: the stage scripts run with stages/ first on sys.path, where a select.py would
shadow the standard library module `select` (used by subprocess) for every stage.

Usage: python stages/select_model.py [options of `satsr select --help`]
"""

import sys

from satsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["select", *sys.argv[1:]]))
