"""The one ``main`` of every pipeline command: parse arguments, set up logging, do the work, map errors to exit codes.

Exit codes, the same for every ``python -m pipeline.<stage>``:

* 0: done;
* 1: the work failed for a reason the message names (a bad input file, a download or verification failure, a
  failed stage): one ``error: ...`` line on stderr, no traceback;
* 2: the invocation is invalid: the command line (argparse), the params or recipe (:class:`ConfigError`), or a
  setup the command needs and does not find (:class:`UsageError`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from hourglass.config.params_file import ConfigError
from pipeline import logs

DONE, FAILED, INVALID = 0, 1, 2


class UsageError(Exception):
    """The command cannot run as invoked (a missing setup it needs); exits 2 with the message."""


def run(parser: argparse.ArgumentParser, work: Callable[[argparse.Namespace], str | None],
        argv: Sequence[str] | None = None, *, failures: tuple[type[BaseException], ...] = (),
        level: int = logging.INFO, fmt: str = logs.STAGE_FORMAT) -> int:
    """Parse ``argv``, configure logging, run ``work(args)`` and print the summary line it returns.

    ``failures`` are the exceptions by which the work reports bad input (exit 1); anything else is a bug and keeps
    its traceback. A :class:`ConfigError` is checked first: it is a ValueError, and an invalid params file exits 2.
    """
    args = parser.parse_args(argv)
    logs.configure(level, fmt)
    try:
        summary = work(args)
    except (ConfigError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return INVALID
    except failures as err:
        print(f"error: {err}", file=sys.stderr)
        return FAILED
    if summary:
        print(summary)
    return DONE


def seed(text: str) -> int:
    """An argparse type for a training seed: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; seeds are integers >= 0")
    return value


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``--set`` items, ``["train.epochs=2"]`` -> ``{"train.epochs": 2}``; a malformed item is a ConfigError."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {err}") from None
    return out
