"""Telling someone: a JSON message POSTed to ``flows.notify_url`` on a promotion, a rollback or a failed run.

Delivery is best effort by design: a short timeout, a few retries with backoff on network errors and on the
answers that mean "try again" (5xx, 408, 429), then a warning in the log. A webhook that is down must never fail
the retraining run or undo a promotion; the decision log and the registry tags stay the record. No Prefect here:
:mod:`pipeline.flows` calls these from its task and its failure hook, the rollback command directly.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from hourglass.io.json_values import json_safe

TIMEOUT_S = 5.0  # per attempt: a webhook that hangs must not hold the run
ATTEMPTS = 3
BACKOFF_S = 1.0  # before the second attempt; doubles
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
SOURCE = "hourglass retrain"

Log = logging.Logger | logging.LoggerAdapter


def post_json(url: str, message: Mapping[str, Any], log: Log, *, timeout: float = TIMEOUT_S,
              attempts: int = ATTEMPTS, backoff: float = BACKOFF_S,
              sleep: Callable[[float], None] = time.sleep) -> bool:
    """POST ``message`` as JSON to ``url``; True once a 2xx answer came, False (and a warning) after ``attempts``.

    Never raises for the network or the receiver: the caller's work is done and must stand."""
    body = json.dumps(json_safe(message)).encode()
    event = message.get("event", "message")
    delay = backoff
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": SOURCE})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                log.info("notified %s of the %s (HTTP %d)", url, event, response.status)
                return True
        except urllib.error.HTTPError as err:
            problem, retry = f"HTTP {err.code} {err.reason}", err.code in RETRY_STATUS
        except (urllib.error.URLError, OSError) as err:  # refused, unreachable, timed out
            problem, retry = f"{type(err).__name__}: {getattr(err, 'reason', err)}", True
        if not retry or attempt == attempts:
            log.warning("could not notify %s of the %s after %d attempt(s) (%s); the run goes on", url, event,
                        attempt, problem)
            return False
        log.info("notifying %s of the %s: %s; retrying in %.1f s", url, event, problem, delay)
        sleep(delay)
        delay *= 2
    return False


def flow_run_fields(flow_run_id: str | None, flow_run_name: str | None) -> dict[str, Any] | None:
    """The Prefect flow run a message comes from (None outside a flow run: a rollback at a prompt)."""
    if flow_run_id is None and flow_run_name is None:
        return None
    return {"id": flow_run_id, "name": flow_run_name}


def decision_message(decision: Mapping[str, Any], flow_run: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A promotion: which model and versions, both scores, the reason (``decision``: a contest record)."""
    return {
        "event": "promotion", "source": SOURCE,
        "model": decision.get("model"), "alias": decision.get("alias"), "metric": decision.get("metric"),
        "versions": {"candidate": decision.get("candidate_version"),
                     "champion_before": decision.get("champion_version"), "serving": decision.get("serving_version")},
        "scores": {"candidate": decision.get("candidate_score"), "champion_before": decision.get("champion_score")},
        "reason": decision.get("reason"), "decided_at": decision.get("decided_at"), "flow_run": flow_run,
    }


def rollback_message(record: Mapping[str, Any], flow_run: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A rollback: the alias moved back from one version to another, and why."""
    return {
        "event": "rollback", "source": SOURCE, "model": record.get("model"), "alias": record.get("alias"),
        "versions": {"from": record.get("from_version"), "to": record.get("to_version"),
                     "serving": record.get("serving_version")},
        "reason": record.get("reason"), "decided_at": record.get("decided_at"), "flow_run": flow_run,
    }


def failure_message(flow_run: Mapping[str, Any] | None, state: str, error: str | None,
                    model: str | None = None) -> dict[str, Any]:
    """A failed (or crashed) retraining run: which run, its final state and the error it ended with."""
    return {"event": "failure", "source": SOURCE, "model": model, "state": state, "error": error,
            "flow_run": flow_run}
