"""The optional packages of export and of the exported runtimes (pyproject's ``export`` extra): imported on use, and
named with the command that installs them when missing, so a plain install of the package still predicts in torch."""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "run `make install` (it installs the 'export' extra), or pip install 'stacked-hourglass[export]'"


class MissingPackageError(ImportError):
    """An optional package that export or a runtime needs is not installed; the message names it."""


def require(module: str, package: str | None = None, purpose: str = "export") -> ModuleType:
    """``import module`` or :class:`MissingPackageError` naming the pip ``package`` (default: ``module``) and
    what needs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingPackageError(f"{purpose} needs the Python package '{package or module}', which is not installed "
                                  f"({err}); {INSTALL_HINT}") from None
