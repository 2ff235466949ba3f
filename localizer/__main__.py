"""``python -m localizer`` entry point (see :mod:`localizer.cli`)."""

import sys

from .cli import main

sys.exit(main())
