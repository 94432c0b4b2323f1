"""``python -m aarch64mte``: the same command line as ``aarch64mte``."""
import sys

from .cli.main import main

sys.exit(main())
