"""What ``--int8`` asks for, apart from the rest of the export: its defaults are shown by ``--help``, so they live
here, away from the quantiser's imports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_CALIBRATION = 300  # crops; "a few hundred", the usual size for post-training static quantisation
DEFAULT_MAX_DROP = 1.0  # points of the headline metric (issue 27's bar)


@dataclass(frozen=True)
class Int8Options:
    """The preprocessed data (None: found from the model's config), calibration crops, largest drop accepted."""

    data_dir: str | Path | None = None
    calibration: int = DEFAULT_CALIBRATION
    max_drop: float = DEFAULT_MAX_DROP
