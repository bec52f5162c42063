"""The device check's DDP run: the fast path under ``torchrun --standalone`` at the same per-process batch.

``python -m hourglass.bench.ddp_timing SPEC`` is one process of that job (what :func:`time_ddp` starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hourglass.bench.generated import datasets
from hourglass.bench.step_timing import time_training
from hourglass.config import ParamsConfig
from hourglass.config.params_file import parse_params
from hourglass.data.workers import available_cores
from hourglass.io.atomic import write_atomic
from hourglass.precision import select_device
from hourglass.train.distributed import dist_info_from_env

WORKER_RESULT = "rank0.json"


def time_ddp(procs: int, params: ParamsConfig, processed: Path, root: Path, warmup: int,
             timeout: float) -> dict[str, Any]:
    """The fast path under ``torchrun --standalone --nproc-per-node=procs`` at ``params``' per-process batch
    (the global batch is ``procs`` times it); rank 0's figures."""
    per_process = params.train.batch_size
    raw = params.model_dump(mode="json")
    raw["train"]["batch_size"] = per_process * procs
    spec = root / "ddp-spec.json"
    write_atomic(spec, json.dumps({"params": raw, "data": str(processed), "out": str(root / "ddp"), "warmup": warmup}))
    env = dict(os.environ)
    if select_device().type != "cuda":  # gloo on the CPU: share the cores instead of oversubscribing them
        env["OMP_NUM_THREADS"] = str(max(1, available_cores() // procs))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
           "-m", "hourglass.bench.ddp_timing", str(spec)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ran": False, "processes": procs, "reason": f"torchrun did not finish within {timeout:g} s"}
    result = root / "ddp" / WORKER_RESULT
    if done.returncode != 0 or not result.is_file():
        tail = (done.stderr or done.stdout)[-2000:]
        return {"ran": False, "processes": procs, "reason": f"torchrun exited {done.returncode}: {tail}"}
    figures = json.loads(result.read_text())
    figures.update(ran=True, processes=procs, per_process_batch=per_process, global_batch=per_process * procs,
                   backend="nccl" if select_device().type == "cuda" else "gloo")
    return figures


def worker_main(argv: list[str]) -> int:
    """One process of :func:`time_ddp`'s torchrun job: train on the generated data, rank 0 writes its figures."""
    spec = json.loads(Path(argv[0]).read_text())
    info = dist_info_from_env()
    params = parse_params(spec["params"], "device check (torchrun)")
    train_set, val_set = datasets(Path(spec["data"]), params)
    out_dir = Path(spec["out"])
    figures = time_training(params, out_dir, train_set, val_set, int(spec["warmup"]), info)
    if info.is_main:
        write_atomic(out_dir / WORKER_RESULT, json.dumps(figures))
    return 0


if __name__ == "__main__":  # one process of the torchrun job started by time_ddp
    sys.exit(worker_main(sys.argv[1:]))
