"""Scoring predictions: PCKh/PCK of a prediction file, the evaluate stage's work, and the mean-pose baseline."""
