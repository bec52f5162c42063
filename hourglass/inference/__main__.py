"""``python -m hourglass.inference``: the same as ``hourglass predict`` (the console script's subcommand)."""

import sys

from hourglass.cli.predict import predict_main

sys.exit(predict_main())
