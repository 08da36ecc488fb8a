"""``python -m qeuopt.cli``: the same command as ``qeuopt``."""

import sys

from qeuopt.cli.main import entry

sys.exit(entry())
