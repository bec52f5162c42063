"""Released weights in the pipeline: the ``import@<name>`` stage turns params.yaml ``imports.<name>`` into a model
directory the evaluate stage, the report and ``hourglass predict`` take like a trained variant's.

``models/<name>/checkpoint.pt`` is the port's checkpoint converted by :func:`hourglass.weights.port.
import_port_checkpoint` (every tensor mapped and checked; the source's sha256 recorded). With MLflow on, the model is
logged as the pose pyfunc in a run of the ablation experiment, nested under the sweep's parent run like the trained
variants' runs, so MLflow's run comparison and the evaluate stage's ``eval/`` scores show it beside them;
``mlflow.json`` names that run (its fields are null without MLflow, so the declared output always exists). It is
not registered: registering (``hourglass import --register``) is a user's decision, and the champion alias is
contested by a trained variant only.
"""

from __future__ import annotations

from pathlib import Path

from hourglass.config import PORT_PROJECT, ParamsConfig
from hourglass.inference.runner import load_model
from hourglass.io.checkpoint import load_checkpoint
from hourglass.io.git import head_commit
from hourglass.tracking.runs import RunTracker
from hourglass.weights.port import ImportResult, import_port_checkpoint


def import_release(params: ParamsConfig, name: str, out_dir: str | Path) -> ImportResult:
    """Convert ``params.imports[name]`` into ``out_dir`` (replacing what is there) and log it to MLflow."""
    try:
        spec = params.imports[name]
    except KeyError:
        known = ", ".join(sorted(params.imports)) or "none defined"
        raise ValueError(f"params.yaml: imports has no entry {name!r} (known: {known})") from None
    out = Path(out_dir)
    result = import_port_checkpoint(spec.path, out, input_res=spec.input_res, variant=name,
                                    source_commit=spec.commit, overwrite=True)
    config = load_checkpoint(result.path)["config"]
    arch = result.architecture
    tags = {"variant": name, "dvc.stage": f"import@{name}", "hourglass.imported": "true",
            "source.project": PORT_PROJECT, "source.sha256": result.sha256}
    if spec.commit:
        tags["source.commit"] = spec.commit
    commit = head_commit()
    if commit:
        tags.update({"git.commit": commit, "mlflow.source.git.commit": commit})
    run_params = {"variant": name, "dataset": config["dataset"], "model": config["model"],
                  "imported_from": {"path": spec.path, "sha256": result.sha256, "project": PORT_PROJECT,
                                    "commit": spec.commit, "epoch": result.epoch, "joints": arch.joints}}
    tracker = RunTracker(out, params.mlflow.model_copy(update={"system_metrics": False}), run_name=name,
                         params=run_params, tags=tags)
    status = "FAILED"
    try:
        network = load_model(result.path).model
        tracker.log_model(network, spec.input_res, None, config=config, variant=name, epoch=result.epoch)
        status = "FINISHED"
    finally:
        tracker.close(status)
    return result
