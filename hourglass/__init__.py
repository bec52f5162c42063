"""Stacked hourglass networks for human pose estimation (Newell, Yang, Deng, ECCV 2016): the library.

Importing the package has no side effects; submodules are imported where they are used.
"""

from hourglass.model import StackedHourglass, create_model

__all__ = ["StackedHourglass", "create_model"]
