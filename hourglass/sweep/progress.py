"""The trainings' per-epoch lines, followed from the sweep's per-stage logs while they run side by side.

Each sweep worker writes its training's output to ``<log_dir>/<stage>.log`` (:mod:`hourglass.sweep.tasks`); a
terminal running the sweep would otherwise show nothing until a training ends. :class:`EpochLines` polls those
files in a thread of the main process and passes on every line in which the training loop reports an epoch (its
loss, validation score, elapsed time and ETA), so several trainings report in one terminal as one would.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

# The loop's per-epoch record ("... hourglass.train.loop: [hg seed 0, 1/5] epoch 2/5  loss ...  ETA 3:11"): the
# part from the bracket on is passed on.
EPOCH_LINE = re.compile(r"(\[[^\]]+\] epoch \d+/\d+ .*)$")


class EpochLines:
    """Follow ``stages``' logs in ``log_dir``; ``emit`` gets each new epoch line (every ``interval`` s, and once more
    on exit so the last lines are not lost)."""

    def __init__(self, log_dir: Path, stages: Sequence[str], emit: Callable[[str], None], interval: float = 2.0):
        self._files = [log_dir / f"{stage}.log" for stage in stages]
        self._offsets = dict.fromkeys(self._files, 0)
        self._partial = dict.fromkeys(self._files, "")
        self._emit, self._interval = emit, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep-epoch-lines", daemon=True)

    def poll(self) -> None:
        """Read what each log gained since the last poll; emit its complete epoch lines."""
        for path in self._files:
            try:
                with open(path, encoding="utf-8", errors="replace") as log:
                    log.seek(self._offsets[path])
                    text = log.read()
                    self._offsets[path] = log.tell()
            except FileNotFoundError:
                continue
            *lines, self._partial[path] = (self._partial[path] + text).split("\n")
            for line in lines:
                found = EPOCH_LINE.search(line)
                if found:
                    self._emit(found.group(1))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()

    def __enter__(self) -> EpochLines:
        for path in self._files:  # a retried sweep appends to the logs: only what is written from now on counts
            self._offsets[path] = path.stat().st_size if path.exists() else 0
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()
