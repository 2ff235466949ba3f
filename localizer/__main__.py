"""``python -m localizer`` entry point (see :mod:`localizer.cli`)."""

import sys

from localizer.cli import main

sys.exit(main())
