"""``python -m relayna.cli``."""

import sys

from relayna.cli import main

sys.exit(main())
