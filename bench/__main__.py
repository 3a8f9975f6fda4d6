"""``python -m bench``: see the package docstring and ``--help``."""
import sys

from bench.cli import main

sys.exit(main())
