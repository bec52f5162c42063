"""How the stage entry points log: one line format, and the libraries' start-up chatter kept out of the pipeline's
output (MLflow announces its table migrations, its system-metrics thread and the missing GPU at INFO level on every
run; their warnings and errors still show)."""

from __future__ import annotations

import logging

QUIET_LOGGERS = ("mlflow", "alembic")
STAGE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: int = logging.INFO, fmt: str = STAGE_FORMAT) -> None:
    """Log at ``level`` in ``fmt`` to stderr; the libraries above only from WARNING."""
    logging.basicConfig(level=level, format=fmt)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
