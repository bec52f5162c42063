"""Prefect orchestration of the DVC pipeline, and the scheduled retraining that moves the ``champion`` alias.

The flow re-implements no stage: every task is one ``dvc repro --single-item <stage>`` (:mod:`pipeline.dvc_stages`);
Prefect adds retries, a schedule, logs and a UI. After the pipeline, the ``promote`` task lets the champion
variant's best registered model compete for the MLflow registry alias with the champion scored on the same
validation split (:func:`hourglass.champion.decide_champion`), and records the contest, or that nothing was new, as a
Prefect artifact and in the history ``reports/champion.json``.

    python -m pipeline.flows run      # one run now (on a temporary local Prefect server unless one is set)
    python -m pipeline.flows serve    # the cron deployment `retrain/scheduled-retrain`; needs a real server
    python -m pipeline.flows promote  # only the champion contest (no Prefect, no DVC)
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
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron
from prefect.settings import get_current_settings
from prefect.states import Completed
from prefect.tasks import exponential_backoff

from hourglass.champion import (
    ChampionError,
    contest_statistic,
    decide_champion,
    record_markdown,
    record_summary,
    tracking_uri_for,
)
from hourglass.champion_log import ChampionLogError
from hourglass.config import ParamsConfig
from hourglass.params_file import load_params
from hourglass.registry import RegistryError
from pipeline import stage as stage_cli
from pipeline.dvc_stages import FlowSetupError, StageFailed, list_stages, plan_stages, run_dvc_repro

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


@task(name="fetch-data", task_run_name="fetch-data-{stage}", cache_policy=NO_CACHE)
def fetch_data(stage: str, repo: str) -> str:
    """Download (or synthesize) the dataset; the flow gives this task its retries with exponential backoff."""
    return _stage_state(stage, run_dvc_repro(stage, Path(repo), get_run_logger()))


@task(name="dvc-stage", task_run_name="repro-{stage}", cache_policy=NO_CACHE)
def run_stage(stage: str, repo: str) -> str:
    """One DVC stage; DVC itself decides whether it is up to date (the task is then named "Skipped")."""
    return _stage_state(stage, run_dvc_repro(stage, Path(repo), get_run_logger()))


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


@flow(name="retrain", log_prints=True)
def retrain(params_path: str = "params.yaml", repo: str = ".") -> dict[str, Any]:
    """Reproduce the pipeline stage by stage, then move ``champion`` only if the new model beats it."""
    root = Path(repo).resolve()
    config: ParamsConfig = load_params(_params_file(params_path, root))
    settings = config.flows
    contest_statistic(config)  # a metric the contest cannot compare fails here, not after the training
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
    return promote(str(root), params_path, settings.champion_variant, list(plan.seeds_of(settings.champion_variant)))


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
                        "the registered version of flows.champion_variant's best seed takes @champion if, scored "
                        "with the champion on the same validation split, it is better beyond flows.confidence and "
                        "by flows.min_improvement; appended to reports/champion.json")
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
    if args.command == "promote":
        root = args.repo.resolve()
        config = load_params(_params_file(str(args.params), root))
        return decide_champion(root, config, logging.getLogger("pipeline.flows")).summary()
    return record_summary(retrain(params_path=str(args.params), repo=str(args.repo)))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; exit codes as :mod:`pipeline.stage` says."""
    return stage_cli.run(_parser(), run_command, argv,
                     failures=(ChampionError, ChampionLogError, FlowSetupError, RegistryError, StageFailed,
                               ValueError))


if __name__ == "__main__":
    # Use the importable module, not this __main__ copy, so the served deployment's entrypoint is
    # `pipeline.flows.retrain` (which the runner's subprocesses can import), not `__main__.retrain`.
    from pipeline.flows import main as _main

    sys.exit(_main())
