"""Prefect orchestration of the DVC pipeline, and the scheduled retraining that moves the ``champion`` alias.

The flow re-implements no stage: every task is one ``dvc repro --single-item <stage>`` (:mod:`pipeline.dvc_stages`);
Prefect adds retries, a schedule, logs and a UI. After the pipeline, the ``promote`` task lets the champion
variant's best registered model compete for the MLflow registry alias with the champion scored on the same
validation split (:func:`hourglass.tracking.champion.decide_champion`), and records the contest, or that nothing
was new, as a Prefect artifact and in the history ``reports/champion.json``. Before the stages, the dataset's sources
outside the project (a COCO export that grows) are checked, and a change forces the fetch stage. Around the stages,
optionally (``flows.git_pull``, ``flows.dvc_pull``, ``flows.dvc_push``), the run syncs the checkout with the team's git
and DVC remotes. A promotion, a rollback and a failed run are POSTed to ``flows.notify_url`` (:mod:`hourglass.notify`).

    python -m pipeline.flows run      # one run now (on a temporary local Prefect server unless one is set)
    python -m pipeline.flows serve    # the cron deployment `retrain/scheduled-retrain`; needs a real server
    python -m pipeline.flows promote  # only the champion contest (no Prefect, no DVC)
    python -m pipeline.flows rollback # move `champion` back to the previous holder (or --to VERSION)
    python -m pipeline.flows server   # a Prefect server whose UI calls its own API
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from prefect import flow, get_run_logger, serve, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy, FlowRun
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run as current_flow_run
from prefect.schedules import Cron
from prefect.settings import get_current_settings
from prefect.states import Completed, State
from prefect.tasks import exponential_backoff

from hourglass.config import ParamsConfig
from hourglass.config.params_file import load_params
from hourglass.data.download import http_settings
from hourglass.data.sources import changed_sources
from hourglass.family import family_from_card
from hourglass.notify import decision_message, failure_message, flow_run_fields, post_json, rollback_message
from hourglass.tracking.candidate import ChampionError, tracking_uri_for
from hourglass.tracking.champion import contest_statistic, decide_champion, record_summary
from hourglass.tracking.champion_log import ChampionLogError
from hourglass.tracking.champion_record import record_markdown
from hourglass.tracking.registry import RegistryError
from hourglass.tracking.rollback import RollbackError, registered_model_name, roll_back
from hourglass.tracking.store import default_tracking_uri
from pipeline import stage as stage_cli
from pipeline.dvc_stages import (
    DvcLockTimeout,
    FlowSetupError,
    StageFailed,
    SyncFailed,
    dvc_sync,
    git_pull,
    list_stages,
    plan_stages,
    run_dvc_repro,
)
from pipeline.sweep import SweepFailed, is_upstream, raise_failures, train_in_parallel

DEPLOYMENT_NAME = "scheduled-retrain"
ARTIFACT_KEY = "champion-decision"
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


def _stage_state(stage: str, ran: bool) -> Any:
    """The task's final state: Completed when DVC ran the stage, Completed named "Skipped" when it was up to date,
    so the Prefect UI shows at a glance that nothing was retrained."""
    if ran:
        return Completed(message=f"dvc ran {stage}", data=stage)
    return Completed(name="Skipped", message=f"dvc: {stage} is up to date, nothing ran", data=stage)


@task(name="check-sources", task_run_name="check-sources", cache_policy=NO_CACHE)
def check_sources(repo: str, params_path: str) -> list[str]:
    """What changed in the dataset's sources outside the project since they were brought in (a COCO export that
    grew); DVC cannot see those files, so a change forces the fetch stage."""
    log = get_run_logger()
    config = load_params(params_path)
    card, dataset, raw_root = config.card(), config.dataset, config.download.root
    raw = Path(raw_root) if Path(raw_root).is_absolute() else Path(repo) / raw_root
    changes = changed_sources(card, raw / card.name, http_settings(config.download, progress=False))
    for line in changes[:20]:
        log.info("source %s", line)
    log.info("%s: %s", dataset, f"{len(changes)} source change(s)" if changes else "sources unchanged")
    return changes


@task(name="fetch-data", task_run_name="fetch-data-{stage}", cache_policy=NO_CACHE)
def fetch_data(stage: str, repo: str, lock_wait: float, force: bool = False) -> str:
    """Download (or synthesize, or import) the dataset; the flow gives this task its retries with exponential
    backoff. ``force``: the sources changed outside what DVC tracks."""
    return _stage_state(stage, run_dvc_repro(stage, Path(repo), get_run_logger(), lock_wait, force=force))


@task(name="dvc-stage", task_run_name="repro-{stage}", cache_policy=NO_CACHE)
def run_stage(stage: str, repo: str, lock_wait: float) -> str:
    """One DVC stage; DVC itself decides whether it is up to date (the task is then named "Skipped"). Another
    process holding DVC's lock is waited for, up to ``lock_wait`` seconds."""
    return _stage_state(stage, run_dvc_repro(stage, Path(repo), get_run_logger(), lock_wait))


@task(name="train-sweep", task_run_name="train-sweep-{workers}", cache_policy=NO_CACHE)
def train_sweep(repo: str, workers: int, lock_wait: float) -> Any:
    """``flows.parallel`` > 1: every out-of-date training at once, ``workers`` at a time, on a local Dask cluster,
    each committed to DVC as it ends (:mod:`pipeline.sweep`); a failed one is retried, resuming from its checkpoint.
    Fails the run, naming them, when some fail every attempt. "Skipped" when every training was up to date."""
    log = get_run_logger()
    result = train_in_parallel(Path(repo), workers, lock_wait=lock_wait, logger=log)
    for line in result.lines():
        log.info("%s", line)
    raise_failures(result)
    if not result.attempts:
        return Completed(name="Skipped", message="dvc: every training is up to date, nothing ran")
    return Completed(message=f"trained {', '.join(result.done)} in parallel", data=result.done)


@task(name="sync", task_run_name="{command}", cache_policy=NO_CACHE)
def sync(command: str, repo: str, lock_wait: float) -> None:
    """``git-pull`` (fast-forward only), ``dvc-pull`` or ``dvc-push``: one machine retrains what the team committed
    and shares what it built. A failure fails the run, with the command's output tail (SyncFailed)."""
    log = get_run_logger()
    if command == "git-pull":
        git_pull(Path(repo), log)
    else:
        dvc_sync(command.removeprefix("dvc-"), Path(repo), log, lock_wait)


@task(name="notify", task_run_name="notify-{event}", cache_policy=NO_CACHE)
def notify(url: str, event: str, message: dict[str, Any]) -> bool:
    """POST ``message`` to ``flows.notify_url``. Never fails: a webhook that is down is a warning in this task's
    log (hourglass.notify retries it a few times first), the promotion stands."""
    return post_json(url, message, get_run_logger())


@task(name="promote", task_run_name="promote-{variant}", cache_policy=NO_CACHE)
def promote(repo: str, params_path: str, variant: str, seeds: Sequence[int]) -> dict[str, Any]:
    """Champion contest for the best of ``variant``'s ``seeds`` (``variant`` is params' flows.champion_variant, named
    for the task run); the record it appends to reports/champion.json becomes a markdown artifact and the result."""
    log = get_run_logger()
    root = Path(repo)
    outcome = decide_champion(root, load_params(_params_file(params_path, root)), log, list(seeds))
    record = outcome.record
    uri = tracking_uri_for(root, outcome.candidate.record)
    experiment = MlflowClient(tracking_uri=uri).get_run(outcome.candidate.record.run_id).info.experiment_id
    create_markdown_artifact(
        markdown=record_markdown(record, uri, experiment),
        key=ARTIFACT_KEY,
        description=f"Did {record['model']} v{record['candidate_version']} take @{record['alias']}?",
    )
    return record


def _params_file(params_path: str, root: Path) -> Path:
    """params.yaml relative to the repo: DVC's stages read the repo's copy, so the flow reads it too."""
    path = Path(params_path)
    return path if path.is_absolute() else root / path


def notify_failure(flow: Any, flow_run: FlowRun, state: State) -> None:
    """The flow's failure (and crash) hook: POST the run, its final state and its error to ``flows.notify_url``.

    A hook, not a task: a run fails wherever a task or the flow body raises (a stage, a sync command, a bad
    params file), and only a state hook runs after that, with the final state; the flow body never gets there.
    The URL comes from the run's own params file; when that cannot be read, the hook can only log."""
    log = flow_run_logger(flow_run, flow)
    parameters = flow_run.parameters or {}
    try:
        root = Path(str(parameters.get("repo", "."))).resolve()
        config = load_params(_params_file(str(parameters.get("params_path", "params.yaml")), root))
    except Exception as err:  # the params file may be why the run failed
        log.warning("not notifying the failure: the run's params file cannot be read (%s)", err)
        return
    url = config.flows.notify_url
    if not url:
        return
    try:
        model = registered_model_name(config)
    except RollbackError:
        model = None
    message = failure_message(flow_run_fields(str(flow_run.id), flow_run.name), state.name or str(state.type),
                              state.message, model)
    post_json(url, message, log)


@flow(name="retrain", log_prints=True, on_failure=[notify_failure], on_crashed=[notify_failure])
def retrain(params_path: str = "params.yaml", repo: str = ".") -> dict[str, Any]:
    """Reproduce the pipeline stage by stage, then move ``champion`` only if the new model beats it."""
    root = Path(repo).resolve()
    config: ParamsConfig = load_params(_params_file(params_path, root))
    if config.flows.git_pull:  # the pulled commit may change the params themselves: read them again
        sync("git-pull", str(root), config.flows.lock_wait)
        config = load_params(_params_file(params_path, root))
    settings = config.flows
    if settings.dvc_pull:
        sync("dvc-pull", str(root), settings.lock_wait)
    contest_statistic(config)  # a metric the contest cannot compare fails here, not after the training
    stages = list_stages(root)
    plan = plan_stages(stages, config.dataset, settings.champion_variant)
    log = get_run_logger()
    log.info("stages, in order: %s", " -> ".join(plan.stages()))
    if unplanned := plan.unplanned(stages):
        log.warning("dvc.yaml stages this flow does not run: %s", ", ".join(unplanned))

    changes = check_sources(str(root), str(_params_file(params_path, root)))
    retries = settings.download_retries
    fetch_data.with_options(
        retries=retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.download_retry_delay)(retries),
    )(plan.fetch, str(root), settings.lock_wait, force=bool(changes))
    stages_left = plan.stages()[1:]
    if settings.parallel > 1:  # the data and imports, then every training at once, then the rest one by one
        for stage in filter(is_upstream, stages_left):
            run_stage(stage, str(root), settings.lock_wait)
        train_sweep(str(root), settings.parallel, settings.lock_wait)
        stages_left = [s for s in stages_left if not is_upstream(s) and not s.startswith("train@")]
    for stage in stages_left:
        run_stage(stage, str(root), settings.lock_wait)
    if settings.dvc_push:  # before the contest: a champion's data and models are in the team's remote
        sync("dvc-push", str(root), settings.lock_wait)
    decision = promote(str(root), params_path, settings.champion_variant,
                       list(plan.seeds_of(settings.champion_variant)))
    if settings.notify_url and decision.get("promoted"):
        run = flow_run_fields(current_flow_run.id, current_flow_run.name)
        notify(settings.notify_url, "promotion", decision_message(decision, run))
    return decision


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
    contest_statistic(config)  # refuse to schedule a contest on a metric it cannot compare
    settings = config.flows
    return retrain.to_deployment(
        name=name,
        schedules=[Cron(cron or settings.cron, timezone=settings.timezone)],
        parameters={"params_path": str(params_file), "repo": str(root)},
        description="Re-run the DVC pipeline; move the MLflow alias `champion` only if the new model wins.",
        tags=["retrain"],
        entrypoint_type=EntrypointType.MODULE_PATH,
        # One retrain at a time, whoever starts it (the schedule, a trigger, a second `serve`): the server holds a
        # second run as "AwaitingConcurrencySlot" until the first ends. Two runs on one checkout would fight over
        # DVC's lock and over the alias.
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,serve,promote,rollback,server}")
    server = commands.add_parser(
        "server", help="start a Prefect server (API + UI, SQLite under PREFECT_HOME) whose UI talks to its own API")
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    server.add_argument("--port", type=int, default=4299, help="port of the API and the UI (default: %(default)s)")
    run = commands.add_parser("run", help="run the retrain flow once, now, in this process")
    promote_cmd = commands.add_parser(
        "promote", help="only the champion contest, on what the pipeline has already produced (no Prefect, no DVC): "
                        "the registered version of flows.champion_variant's best seed takes @champion if, scored "
                        "with the champion on the same validation split, it is better beyond flows.confidence and "
                        "by flows.min_improvement; appended to reports/champion.json")
    serve = commands.add_parser(
        "serve", help=f"serve the deployment retrain/{DEPLOYMENT_NAME} on flows.cron (needs PREFECT_API_URL)"
    )
    rollback = commands.add_parser(
        "rollback", help="move @champion of <mlflow.registered_model>-<dataset> back to the version that held it "
                         "before the current one (from reports/champion.json), or to --to VERSION; recorded as a "
                         "decision (log record, tags on that version) and sent to flows.notify_url")
    rollback.add_argument("--to", metavar="VERSION", help="the version to serve (default: the previous holder)")
    rollback.add_argument("--reason", help="why, for the record (default: from which version to which, by whom)")
    for sub in (run, serve, promote_cmd, rollback):
        sub.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository (default: .)")
        sub.add_argument(
            "--params", type=Path, default=Path("params.yaml"),
            help="params file, relative to --repo unless absolute (default: params.yaml)",
        )
    serve.add_argument("--name", default=DEPLOYMENT_NAME, help=f"deployment name (default {DEPLOYMENT_NAME})")
    serve.add_argument("--cron", help="cron string that overrides flows.cron, e.g. '* * * * *' for a trial")
    return parser


def rollback_command(root: Path, params_path: Path, to: str | None, reason: str | None) -> str:
    """``rollback``: move the alias back (:func:`hourglass.tracking.rollback.roll_back`), tell
    ``flows.notify_url``; returns the summary line."""
    config = load_params(_params_file(str(params_path), root))
    card = config.card()
    client = MlflowClient(tracking_uri=default_tracking_uri(root))
    log = logging.getLogger("pipeline.flows")
    record = roll_back(root, client, registered_model_name(config), config.dataset,
                       family_from_card(card).joints.names, to, reason, log=log)
    if config.flows.notify_url:
        post_json(config.flows.notify_url, rollback_message(record), log)
    return (f"{record['model']}@{record['alias']}: rolled back from v{record['from_version'] or '-'} to "
            f"v{record['to_version']} ({record['reason']}); serving v{record['serving_version']}")


def run_command(args: argparse.Namespace) -> str:
    """One subcommand (the server replaces this process); returns the decision's summary line."""
    if args.command == "server":
        print(f"Prefect UI: http://{args.host}:{args.port}   (in other shells: export "
              f"PREFECT_API_URL=http://{args.host}:{args.port}/api)", flush=True)
        # exec, not a child process: Ctrl-C, a terminate or a kill of this command reach the server itself, which
        # a child would survive (orphaned, still holding the port)
        os.execve(sys.executable, [sys.executable, "-m", "prefect", "server", "start"],
                  server_env(args.host, args.port))
    if args.command == "serve":
        problem = server_problem()
        if problem:
            raise stage_cli.UsageError(problem)
        serve(build_deployment(args.params, args.repo, args.name, args.cron), limit=1)  # DVC's lock: one at a time
        return ""
    if args.command == "rollback":
        return rollback_command(args.repo.resolve(), args.params, args.to, args.reason)
    if args.command == "promote":
        root = args.repo.resolve()
        config = load_params(_params_file(str(args.params), root))
        return decide_champion(root, config, logging.getLogger("pipeline.flows")).summary()
    return record_summary(retrain(params_path=str(args.params), repo=str(args.repo)))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; exit codes as :mod:`pipeline.stage` says."""
    return stage_cli.run(_parser(), run_command, argv,
                     failures=(ChampionError, ChampionLogError, DvcLockTimeout, FlowSetupError, RegistryError,
                               RollbackError, StageFailed, SweepFailed, SyncFailed, ValueError))


if __name__ == "__main__":
    # Use the importable module, not this __main__ copy, so the served deployment's entrypoint is
    # `pipeline.flows.retrain` (which the runner's subprocesses can import), not `__main__.retrain`.
    from pipeline.flows import main as _main

    sys.exit(_main())
