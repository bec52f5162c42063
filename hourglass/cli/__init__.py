"""The ``hourglass`` console script and its subcommands, one module each: predict (with its outputs and video),
import (a port checkpoint), export, score. :func:`main` is the script's entry point (pyproject ``[project.scripts]``).
"""

from hourglass.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
