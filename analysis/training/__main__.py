"""``python -m analysis.training [out_dir] [--force] [--only standard|robust]``: see :mod:`.pipeline`."""
import sys

from .pipeline import main

sys.exit(main())
