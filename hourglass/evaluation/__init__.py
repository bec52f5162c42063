"""Scoring predictions: PCKh/PCK of a prediction file (``score``), COCO keypoint results (``coco_eval``: OKS AP/AR,
PCK@bbox, EPE), the evaluate stage's work, and the mean-pose baseline."""
