"""The one error of bad input to prediction, raised by the person, input and predictor modules alike."""

from __future__ import annotations


class PredictError(ValueError):
    """Bad input to prediction (an unreadable image, a person box outside the image); the message names it."""
