"""Prefect orchestration of the DVC pipeline, and the scheduled retraining that moves the ``champion`` alias.

The flow re-implements no stage: every task is one ``dvc repro --single-item <stage>`` subprocess, run one
after another because DVC's repo lock forbids concurrent ``dvc repro`` processes. DVC keeps owning caching
(it skips an unchanged stage); Prefect adds retries, a schedule, logs and a UI. After the pipeline, the
``promote`` task lets the champion variant's freshly registered model compete for the MLflow registry alias
(``hourglass.registry.promote_if_better``) and records the decision as a Prefect artifact and in
``reports/champion.json``.

    python -m pipeline.flows run      # one run now (on a temporary local Prefect server unless one is set)
    python -m pipeline.flows serve    # the cron deployment `retrain/scheduled-retrain`; needs a real server

The trainer leaves ``models/<variant>/seed-<n>/mlflow.json`` =
``{"run_id", "model_uri", "registered_model", "version"}`` (optionally ``"tracking_uri"``) and
``models/<variant>/seed-<n>/metrics.json``; that is the whole contract with the training stage.

With several training seeds (params ``seeds``, dvc.yaml's ``train@<variant>-<seed>`` matrix), the champion
variant's seed with the best champion metric is the candidate (ties: the first in ``seeds``); champion.json and the
artifact name it and list every seed's score. The best of several seeds is an optimistic estimate of the variant's
score (the report's mean +- sd is the expected one); what the alias serves is the best model trained.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

from mlflow import MlflowClient
from prefect import flow, get_run_logger, serve, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron
from prefect.settings import get_current_settings
from prefect.states import Completed
from prefect.tasks import exponential_backoff

from hourglass.io.atomic import write_json_atomic
from hourglass.config import ParamsConfig
from hourglass.family import champion_metric
from hourglass.layout import model_dir, parse_stage_item, stage_item
from hourglass.params_file import ConfigError, load_params
from hourglass.registry import Decision, RegistryError, promote_if_better, version_score

DEPLOYMENT_NAME = "scheduled-retrain"
DECISION_FILE = Path("reports") / "champion.json"
ARTIFACT_KEY = "champion-decision"
STDERR_TAIL_LINES = 30
SERVER_HELP = (
    "Start a Prefect server and point this shell at it:\n"
    "  python -m pipeline.flows server --host 127.0.0.1 --port 4299      # in another terminal\n"
    "  export PREFECT_API_URL=http://127.0.0.1:4299/api"
)


def server_env(host: str, port: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a Prefect server on ``host:port`` whose UI calls that same API.

    ``prefect server start --port P`` alone moves the API but not the UI's idea of it (PREFECT_UI_API_URL defaults
    to the configured host and port, 4200), so its page says "Can't connect to Server API". Setting the server's
    host, port and the UI's API URL together keeps them one address."""
    env = dict(os.environ if base is None else base)
    env.update(PREFECT_SERVER_API_HOST=host, PREFECT_SERVER_API_PORT=str(port),
               PREFECT_UI_API_URL=f"http://{host}:{port}/api", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               DO_NOT_TRACK="1")
    env.pop("PREFECT_API_URL", None)  # the server itself must not try to reach another one
    return env


class StageFailed(RuntimeError):
    """``dvc repro`` of one stage exited non-zero; the message carries the stage and its stderr's tail."""

    def __init__(self, stage: str, returncode: int, stderr_tail: Sequence[str]) -> None:
        self.stage, self.returncode, self.stderr_tail = stage, returncode, list(stderr_tail)
        tail = "\n".join(f"  | {line}" for line in self.stderr_tail) or "  | (no stderr)"
        message = f"DVC stage {stage!r} failed (dvc repro exit code {returncode}); stderr tail:\n{tail}"
        super().__init__(message)


class FlowSetupError(RuntimeError):
    """The repository lacks what the flow needs (a stage, mlflow.json, a metric); the message says which."""


# ------------------------------------------------------------------------------------------- dvc calls


def _dvc(*args: str) -> list[str]:
    """DVC from this interpreter, so the flow never picks up another installation's ``dvc`` from PATH."""
    return [sys.executable, "-m", "dvc", *args]


def _stage_env() -> dict[str, str]:
    """``dvc repro``'s environment: this interpreter's bin first, so the stages' ``python`` is this venv's."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


# How DVC says it did not run a stage: "Stage 'train@hg' didn't change, skipping".
SKIPPED = re.compile(r"Stage '[^']+' didn't change, skipping")


def _stage_state(stage: str, ran: bool) -> Any:
    """The task's final state: Completed when DVC ran the stage, Completed named "Skipped" when it was up to date,
    so the Prefect UI shows at a glance that nothing was retrained."""
    if ran:
        return Completed(message=f"dvc ran {stage}", data=stage)
    return Completed(name="Skipped", message=f"dvc: {stage} is up to date, nothing ran", data=stage)


def _last_frame(line: str) -> str:
    """A progress bar redraws with carriage returns; keep what the terminal would finally show."""
    return line.rstrip("\n").rsplit("\r", 1)[-1].rstrip()


def _pump(stream: IO[str], log: logging.Logger | logging.LoggerAdapter, tail: deque[str] | None,
          seen: list[str] | None = None) -> None:
    for raw in stream:
        line = _last_frame(raw)
        if line:
            log.info("%s", line)
            if seen is not None:
                seen.append(line)
            if tail is not None:
                tail.append(line)


def run_dvc_repro(stage: str, repo: Path, log: logging.Logger | logging.LoggerAdapter) -> bool:
    """Run ``dvc repro --single-item stage`` in ``repo``, streaming its output into ``log``; True when the stage
    ran, False when DVC found it up to date and skipped it.

    ``--single-item`` because the flow has already brought every upstream stage up to date, in order; DVC
    still skips the stage when nothing it depends on changed. Raises StageFailed on a non-zero exit.
    """
    args = ["repro", "--single-item", stage]
    log.info("$ dvc %s   (in %s)", shlex.join(args), repo)
    proc = subprocess.Popen(
        _dvc(*args), cwd=repo, env=_stage_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        errors="replace", bufsize=1,
    )
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    stderr_reader = threading.Thread(target=_pump, args=(proc.stderr, log, tail), daemon=True)
    stderr_reader.start()
    output: list[str] = []
    try:
        _pump(proc.stdout, log, None, output)
        returncode = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted or cancelled: do not leave DVC running and holding its lock
            proc.terminate()
            proc.wait()
        stderr_reader.join()
    if returncode != 0:
        raise StageFailed(stage, returncode, tail)
    return not any(SKIPPED.search(line) for line in [*output, *tail])


def list_stages(repo: Path) -> list[str]:
    """Every stage DVC sees in ``repo``, foreach/matrix items expanded (``train@hg8``), in dvc.yaml order."""
    done = subprocess.run(
        _dvc("stage", "list", "--name-only"), cwd=repo, env=_stage_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise FlowSetupError(f"{repo}: `dvc stage list` failed: {done.stderr.strip() or done.stdout.strip()}")
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class StagePlan:
    """Which DVC stages the flow runs, in which order."""

    fetch: str
    preprocess: str
    runs: tuple[tuple[str, int], ...]  # (variant, seed) of every train@<variant>-<seed>, in dvc.yaml's order
    evaluated: frozenset[tuple[str, int]]  # the runs that have an evaluate@<variant>-<seed> stage
    report: str | None
    imports: tuple[str, ...] = ()  # params imports: import@<name>, then evaluate_import@<name> where it exists
    scored_imports: frozenset[str] = frozenset()

    @property
    def variants(self) -> tuple[str, ...]:
        """The trained variants, in dvc.yaml's order."""
        return tuple(dict.fromkeys(variant for variant, _ in self.runs))

    def seeds_of(self, variant: str) -> tuple[int, ...]:
        """The seeds ``variant`` is trained from, in dvc.yaml's (params ``seeds``) order."""
        return tuple(seed for name, seed in self.runs if name == variant)

    def stages(self) -> list[str]:
        """Every stage to run, in order (the fetch stage first): each run's training, then its evaluation."""
        order = [self.fetch, self.preprocess]
        for variant, seed in self.runs:
            order.append(f"train@{stage_item(variant, seed)}")
            if (variant, seed) in self.evaluated:
                order.append(f"evaluate@{stage_item(variant, seed)}")
        for name in self.imports:  # released weights, scored beside the variants before the report
            order.append(f"import@{name}")
            if name in self.scored_imports:
                order.append(f"evaluate_import@{name}")
        return order + ([self.report] if self.report else [])

    def unplanned(self, stages: Sequence[str]) -> list[str]:
        """Stages of dvc.yaml the flow does not run (the other dataset's fetch stage aside), to warn about."""
        known = set(self.stages())
        return [name for name in stages if name not in known]


def plan_stages(stages: Sequence[str], dataset: str, champion_variant: str) -> StagePlan:
    """Map dvc.yaml's stage names onto the flow's steps; a missing required stage is an error listing all."""
    fetch = "download"  # fetches MPII/FLIC, or generates the synthetic set when dataset is synthetic
    available = ", ".join(stages) or "(none)"
    for needed in (fetch, "preprocess"):
        if needed not in stages:
            message = f"dvc.yaml has no {needed!r} stage (dataset: {dataset}); stages: {available}"
            raise FlowSetupError(message)
    items = [name.split("@", 1)[1] for name in stages if name.startswith("train@")]
    if not items:
        raise FlowSetupError(f"dvc.yaml has no train@<variant>-<seed> stages; stages: {available}")
    runs = tuple(parse_stage_item(item) for item in items)
    if None in runs:
        odd = [f"train@{item}" for item, run in zip(items, runs) if run is None]
        raise FlowSetupError(f"dvc.yaml's {', '.join(odd)} is not train@<variant>-<seed> (a matrix of the sweep "
                             f"and params seeds); stages: {available}")
    imports = tuple(name.split("@", 1)[1] for name in stages if name.startswith("import@"))
    plan = StagePlan(fetch, "preprocess", runs, frozenset(r for r in runs if f"evaluate@{stage_item(*r)}" in stages),
                     "report" if "report" in stages else None, imports,
                     frozenset(n for n in imports if f"evaluate_import@{n}" in stages))
    if champion_variant not in plan.variants:
        raise FlowSetupError(
            f"params flows.champion_variant is {champion_variant!r}, but dvc.yaml trains only "
            f"{', '.join(plan.variants)}"
        )
    return plan


# ------------------------------------------------------------------------------------- champion record


@dataclass(frozen=True)
class TrainingRecord:
    """``models/<variant>/seed-<n>/mlflow.json``, written by the training stage after it registered the model."""

    run_id: str
    model_uri: str
    registered_model: str
    version: str
    tracking_uri: str | None


def read_training_record(path: Path) -> TrainingRecord:
    """Parse and check mlflow.json; a missing or partial file is an error that names the key."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        message = f"{path}: not found; the training stage writes it after registering the model"
        raise FlowSetupError(message) from None
    except json.JSONDecodeError as err:
        raise FlowSetupError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise FlowSetupError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    missing = [key for key in ("run_id", "model_uri", "registered_model", "version") if not raw.get(key)]
    if missing:
        raise FlowSetupError(
            f"{path}: missing or empty key(s) {', '.join(missing)}; the champion needs a registered model "
            "(params mlflow.log_model true, mlflow.registered_model set, and MLflow reachable while training)"
        )
    return TrainingRecord(
        run_id=str(raw["run_id"]),
        model_uri=str(raw["model_uri"]),
        registered_model=str(raw["registered_model"]),
        version=str(raw["version"]),
        tracking_uri=str(raw["tracking_uri"]) if raw.get("tracking_uri") else None,
    )


def tracking_uri_for(repo: Path, record: TrainingRecord) -> str:
    """The store the trainer used: mlflow.json's own, else ``MLFLOW_TRACKING_URI``, else ``<repo>/mlflow.db``.

    DVC runs stages with the repo as working directory, where MLflow's default SQLite store lives.
    """
    return record.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo / 'mlflow.db'}"


def file_metric(path: Path, metric: str) -> float | None:
    """``metric`` from a DVC metrics JSON: a top-level key or a dotted path into objects; null is NaN."""
    if not path.is_file():
        return None
    try:
        node: Any = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FlowSetupError(f"{path}: not valid JSON: {err}") from None
    rest = metric
    while not (isinstance(node, dict) and rest in node):  # a key may itself hold dots: Mean_at_0.1
        head, dot, rest = rest.partition(".")
        if not dot or not isinstance(node, dict) or head not in node:
            return None
        node = node[head]
    node = node[rest]
    if node is None:  # how metrics.json spells a non-finite value; such a candidate never wins
        return math.nan
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise FlowSetupError(f"{path}: {metric!r} is {node!r}, not a number")
    return float(node)


def _cell(score: float | None) -> str:
    return "—" if score is None else (f"{score:.4f}" if math.isfinite(score) else str(score))


def mlflow_links(decision: Decision, run_id: str | None, tracking_uri: str | None,
                 experiment_id: str | None = None) -> str:
    """Where the candidate lives in MLflow: links into the UI when the store is a server, else the ids and the
    UI's routes for ``mlflow ui`` on that store."""
    model = f"models:/{decision.model}/{decision.candidate_version}"
    run_route = f"#/experiments/{experiment_id or 0}/runs/{run_id}" if run_id else None
    version_route = f"#/models/{decision.model}/versions/{decision.candidate_version}"
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri.rstrip("/")
        run = f"[run {run_id}]({base}/{run_route})" if run_id else "run unknown"
        return f"**MLflow:** {run}, [model version `{model}`]({base}/{version_route})"
    return (f"**MLflow:** run `{run_id or 'unknown'}`, model version `{model}` in `{tracking_uri}` "
            f"(`mlflow ui --backend-store-uri {tracking_uri}`, then `{version_route}`)")


def decision_markdown(decision: Decision, variant: str, run_id: str | None = None,
                      tracking_uri: str | None = None, experiment_id: str | None = None,
                      seed_scores: Mapping[int, float] | None = None, seed: int | None = None) -> str:
    """The Prefect artifact: both scores side by side, the verdict, which seed competed (``seed`` of
    ``seed_scores``, every seed's score), and where the candidate is in MLflow."""
    verdict = "promoted" if decision.promoted else "kept the current champion"
    seeds = []
    if seed is not None and seed_scores:
        listed = ", ".join(f"seed {s}: {_cell(v)}" for s, v in seed_scores.items())
        seeds = ["", f"**Seed:** {seed}, the best of the variant's {len(seed_scores)} seed(s) by {decision.metric} "
                     f"({listed}).", ""]
    candidate = f"`{variant}`" if seed is None else f"`{variant}` seed {seed}"
    return "\n".join([
        f"## `{decision.model}@{decision.alias}`: {verdict}",
        "",
        f"| | version | {decision.metric} |",
        "|---|---|---|",
        f"| candidate ({candidate}) | {decision.candidate_version} | {_cell(decision.candidate_score)} |",
        f"| champion before | {decision.champion_version or '—'} | {_cell(decision.champion_score)} |",
        *seeds,
        "",
        f"**Reason:** {decision.reason}. ",
        f"**Serving now:** version {decision.serving_version or '—'} "
        f"({'higher' if decision.higher_is_better else 'lower'} is better; decided {decision.decided_at}).",
        "",
        mlflow_links(decision, run_id, tracking_uri, experiment_id),
    ])


@dataclass(frozen=True)
class Candidate:
    """The seed of the champion variant that competes, its training record, and every seed's score."""

    variant: str
    seed: int
    record: TrainingRecord
    score: float
    seed_scores: dict[int, float]


def _seed_score(repo: Path, run_dir: Path, record: TrainingRecord, metric: str,
                log: logging.Logger | logging.LoggerAdapter) -> float:
    """``metric`` of one trained seed: its registered version's run, else the files its stages wrote."""
    client = MlflowClient(tracking_uri=tracking_uri_for(repo, record))
    score = version_score(client, record.registered_model, record.version, metric)
    if score is not None:
        return score
    # The files the stages wrote: training's metrics.json (val/...), the evaluate stage's names (eval/...).
    sources = [(run_dir / "metrics.json", metric), (run_dir / "eval" / "metrics.json", f"mlflow_metrics.{metric}")]
    for path, key in sources:
        score = file_metric(path, key)
        if score is not None:
            log.info("run %s has no %r metric; using %s", record.run_id, metric, path)
            return score
    raise FlowSetupError(
        f"metric {metric!r} (params flows.champion_metric) is neither in MLflow run {record.run_id} "
        f"of {record.registered_model!r} version {record.version} nor in "
        f"{' or '.join(str(path) for path, _ in sources)}"
    )


def choose_candidate(repo: Path, variant: str, seeds: Sequence[int], metric: str, higher_is_better: bool,
                     log: logging.Logger | logging.LoggerAdapter) -> Candidate:
    """The seed of ``variant`` with the best ``metric`` (ties and all-NaN: the first of ``seeds``); every seed
    needs its ``models/<variant>/seed-<n>/mlflow.json``."""
    if not seeds:
        raise FlowSetupError(f"variant {variant!r}: no training seeds to choose the champion candidate from")
    records, scores = {}, {}
    for seed in seeds:
        run_dir = model_dir(variant, seed, repo / "models")
        records[seed] = read_training_record(run_dir / "mlflow.json")
        scores[seed] = _seed_score(repo, run_dir, records[seed], metric, log)
    best = seeds[0]
    for seed in seeds[1:]:
        score, leader = scores[seed], scores[best]
        if math.isfinite(score) and (not math.isfinite(leader) or
                                     (score > leader if higher_is_better else score < leader)):
            best = seed
    if len(seeds) > 1:
        log.info("%s: seed %d competes for the alias (%s %s; seeds: %s)", variant, best, metric, _cell(scores[best]),
                 ", ".join(f"{s}: {_cell(v)}" for s, v in scores.items()))
    return Candidate(variant, best, records[best], scores[best], scores)


def _decide(repo: Path, variant: str, metric: str, higher_is_better: bool,
            log: logging.Logger | logging.LoggerAdapter, seeds: Sequence[int]) -> tuple[Decision, Candidate]:
    candidate = choose_candidate(repo, variant, seeds, metric, higher_is_better, log)
    record = candidate.record
    client = MlflowClient(tracking_uri=tracking_uri_for(repo, record))
    decision = promote_if_better(
        client, record.registered_model, record.version, metric, higher_is_better=higher_is_better,
        candidate_score=candidate.score,
    )
    record_json = {**decision.to_dict(), "variant": variant, "seed": candidate.seed, "run_id": record.run_id,
                   "seed_scores": {str(s): v for s, v in candidate.seed_scores.items()}}
    write_json_atomic(repo / DECISION_FILE, record_json, allow_nan=True)
    return decision, candidate


def decide_champion(
    repo: Path, variant: str, metric: str, higher_is_better: bool, log: logging.Logger | logging.LoggerAdapter,
    seeds: Sequence[int],
) -> Decision:
    """Let the best of ``variant``'s ``seeds`` (its registered model) compete for ``champion`` and write
    reports/champion.json."""
    return _decide(repo, variant, metric, higher_is_better, log, seeds)[0]


# --------------------------------------------------------------------------------------- prefect tasks


@task(name="fetch-data", task_run_name="fetch-data-{stage}", cache_policy=NO_CACHE)
def fetch_data(stage: str, repo: str) -> str:
    """Download (or synthesize) the dataset; the flow gives this task its retries with exponential backoff."""
    return _stage_state(stage, run_dvc_repro(stage, Path(repo), get_run_logger()))


@task(name="dvc-stage", task_run_name="repro-{stage}", cache_policy=NO_CACHE)
def run_stage(stage: str, repo: str) -> str:
    """One DVC stage; DVC itself decides whether it is up to date (the task is then named "Skipped")."""
    return _stage_state(stage, run_dvc_repro(stage, Path(repo), get_run_logger()))


@task(name="promote", task_run_name="promote-{variant}", cache_policy=NO_CACHE)
def promote(repo: str, variant: str, metric: str, higher_is_better: bool, seeds: Sequence[int]) -> dict[str, Any]:
    """Champion contest for the best of ``variant``'s ``seeds``; the decision becomes a markdown artifact and
    champion.json."""
    log = get_run_logger()
    decision, candidate = _decide(Path(repo), variant, metric, higher_is_better, log, list(seeds))
    record = candidate.record
    uri = tracking_uri_for(Path(repo), record)
    experiment = MlflowClient(tracking_uri=uri).get_run(record.run_id).info.experiment_id
    create_markdown_artifact(
        markdown=decision_markdown(decision, variant, record.run_id, uri, experiment, candidate.seed_scores,
                                   candidate.seed),
        key=ARTIFACT_KEY,
        description=f"Did {decision.model} v{decision.candidate_version} take @{decision.alias}?",
    )
    log.info("%s v%s: %s (%s)", decision.model, decision.candidate_version,
             "promoted" if decision.promoted else "kept the champion", decision.reason)
    return decision.to_dict()


def _params_file(params_path: str, root: Path) -> Path:
    """params.yaml relative to the repo: DVC's stages read the repo's copy, so the flow reads it too."""
    path = Path(params_path)
    return path if path.is_absolute() else root / path


@flow(name="retrain", log_prints=True)
def retrain(params_path: str = "params.yaml", repo: str = ".") -> dict[str, Any]:
    """Reproduce the pipeline stage by stage, then move ``champion`` only if the new model beats it."""
    root = Path(repo).resolve()
    config: ParamsConfig = load_params(_params_file(params_path, root))
    settings = config.flows
    metric = champion_metric(config)  # a metric the runs cannot log fails here, not after the training
    stages = list_stages(root)
    plan = plan_stages(stages, config.dataset, settings.champion_variant)
    log = get_run_logger()
    log.info("stages, in order: %s", " -> ".join(plan.stages()))
    if unplanned := plan.unplanned(stages):
        log.warning("dvc.yaml stages this flow does not run: %s", ", ".join(unplanned))

    retries = settings.download_retries
    fetch_data.with_options(
        retries=retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.download_retry_delay)(retries),
    )(plan.fetch, str(root))
    for stage in plan.stages()[1:]:
        run_stage(stage, str(root))
    return promote(str(root), settings.champion_variant, metric, settings.higher_is_better,
                   list(plan.seeds_of(settings.champion_variant)))


# --------------------------------------------------------------------------------------------- serving


def build_deployment(
    params_path: Path, repo: Path, name: str = DEPLOYMENT_NAME, cron: str | None = None
) -> RunnerDeployment:
    """The scheduled deployment ``retrain/<name>``: cron and timezone from params (``cron`` overrides).

    Paths become absolute defaults because served runs start in a fresh process; the entrypoint is the module
    path, which works from any directory where the package is installed.
    """
    root = repo.resolve()
    params_file = _params_file(str(params_path), root).resolve()
    config = load_params(params_file)
    champion_metric(config)  # refuse to schedule a contest on a metric the runs never log
    settings = config.flows
    return retrain.to_deployment(
        name=name,
        schedules=[Cron(cron or settings.cron, timezone=settings.timezone)],
        parameters={"params_path": str(params_file), "repo": str(root)},
        description="Re-run the DVC pipeline; move the MLflow alias `champion` only if the new model wins.",
        tags=["retrain"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def server_problem() -> str | None:
    """Why ``serve`` cannot schedule here (no PREFECT_API_URL, or nothing answers it); None when it can."""
    url = get_current_settings().api.url
    if not url:
        return (
            "PREFECT_API_URL is not set, so Prefect would start a temporary (ephemeral) server, and an "
            "ephemeral server cannot schedule runs.\n" + SERVER_HELP
        )
    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        return f"no Prefect server answers at PREFECT_API_URL={url} ({error}).\n{SERVER_HELP}"
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.flows",
        description="Run the DVC pipeline as a Prefect flow once, or serve it as a scheduled deployment.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,serve,promote,server}")
    server = commands.add_parser(
        "server", help="start a Prefect server (API + UI, SQLite under PREFECT_HOME) whose UI talks to its own API")
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    server.add_argument("--port", type=int, default=4299, help="port of the API and the UI (default: %(default)s)")
    run = commands.add_parser("run", help="run the retrain flow once, now, in this process")
    promote_cmd = commands.add_parser(
        "promote", help="only the champion contest, on what the pipeline has already produced (no Prefect, no DVC): "
                        "the registered version of flows.champion_variant's best seed takes @champion if it beats "
                        "the incumbent")
    serve = commands.add_parser(
        "serve", help=f"serve the deployment retrain/{DEPLOYMENT_NAME} on flows.cron (needs PREFECT_API_URL)"
    )
    for sub in (run, serve, promote_cmd):
        sub.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository (default: .)")
        sub.add_argument(
            "--params", type=Path, default=Path("params.yaml"),
            help="params file, relative to --repo unless absolute (default: params.yaml)",
        )
    serve.add_argument("--name", default=DEPLOYMENT_NAME, help=f"deployment name (default {DEPLOYMENT_NAME})")
    serve.add_argument("--cron", help="cron string that overrides flows.cron, e.g. '* * * * *' for a trial")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "server":
        print(f"Prefect UI: http://{args.host}:{args.port}   (in other shells: export "
              f"PREFECT_API_URL=http://{args.host}:{args.port}/api)", flush=True)
        # exec, not a child process: Ctrl-C, a terminate or a kill of this command reach the server itself, which
        # a child would survive (orphaned, still holding the port)
        os.execve(sys.executable, [sys.executable, "-m", "prefect", "server", "start"],
                  server_env(args.host, args.port))
    try:
        if args.command == "serve":
            problem = server_problem()
            if problem:
                print(f"error: {problem}", file=sys.stderr)
                return 2
            deployment = build_deployment(args.params, args.repo, args.name, args.cron)
            serve(deployment, limit=1)  # one run at a time: DVC's repo lock allows no more
            return 0
        if args.command == "promote":
            root = args.repo.resolve()
            config = load_params(_params_file(str(args.params), root))
            decision = decide_champion(root, config.flows.champion_variant, champion_metric(config),
                                       config.flows.higher_is_better, logging.getLogger("pipeline.flows"),
                                       config.seeds).to_dict()
        else:
            decision = retrain(params_path=str(args.params), repo=str(args.repo))
    except (ConfigError, FlowSetupError, RegistryError, StageFailed, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    verdict = "promoted" if decision["promoted"] else "kept"
    print(f"{decision['model']}@{decision['alias']}: {verdict} v{decision['candidate_version']} "
          f"({decision['reason']}); serving v{decision['serving_version']}")
    return 0


if __name__ == "__main__":
    # Use the importable module, not this __main__ copy, so the served deployment's entrypoint is
    # `pipeline.flows.retrain` (which the runner's subprocesses can import), not `__main__.retrain`.
    from pipeline.flows import main as _main

    sys.exit(_main())
