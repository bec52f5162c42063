"""``python -m hourglass.evaluation PRED --gt GT``: score a prediction file, as ``hourglass score`` does
(:mod:`hourglass.cli.score`)."""

import sys

from hourglass.cli.score import main

sys.exit(main())
