"""``python -m hourglass.evaluation PRED --gt GT``: score a prediction file (see :mod:`hourglass.evaluation.score`;
COCO keypoint results: :mod:`hourglass.evaluation.coco_eval`)."""

import sys

from hourglass.evaluation.score import main

sys.exit(main())
