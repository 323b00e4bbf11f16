"""The command line of the measuring system; run from the repository root::

    python -m evaluation --help
"""

import sys

from evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
