"""``python -m api.cli`` is ``gridmap``."""

import sys

from api.cli import main

sys.exit(main())
