"""``python -m hourglass.cli``: the ``hourglass`` console script."""

import sys

from hourglass.cli.main import main

sys.exit(main())
