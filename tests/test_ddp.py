"""DistributedDataParallel on CPU (gloo): two processes keep identical replicas and match one process on the same
global batch; ``pipeline.train`` runs end to end under ``torch.distributed.run``.

What "match one process" means, and the tolerance. torch has no CPU SyncBatchNorm, so each replica normalises its
own half of the global batch; a single process over the whole batch computes a different function (at 64 px the
hourglass bottom is 1x1, so BatchNorm there sees 8 values per replica) and training diverges from it. The
reference is therefore one process doing what DDP specifies: each half-batch through the network on its own
(per-replica BatchNorm), the two losses averaged (DDP averages gradients), one RMSprop step on the global batch,
same sampler shards, same memory format. Measured: bitwise equal; asserted within 1e-6, which leaves room for the
all-reduce's sum order on other builds. The memory format matters: in fp32, NCHW and channels_last gradients of
this freshly initialised network differ by up to ~6 % (both differ from float64 by 1.5-6 %; BatchNorm over tiny
spatial maps is ill-conditioned), and RMSprop's normalised steps amplify that into a different trajectory.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from shipped import write_params
from torch.utils.data import DistributedSampler, default_collate

from hourglass.io.checkpoint import CHECKPOINT_NAME, load_checkpoint
from hourglass.model import create_model
from hourglass.precision import Precision
from hourglass.train.criterion import build_criterion
from hourglass.train.distributed import DistInfo
from hourglass.train.loop import train
from hourglass.train.validation import validate

sys.path.insert(0, str(Path(__file__).parent))
from toy_poses import ToyPoses, tiny_params  # noqa: E402  (the shared dataset)

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-6  # see the module docstring


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_params():
    return tiny_params(epochs=2, batch_size=16, lr=1e-3, deterministic=False)


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    result = train(_ddp_params(), out_dir, train_set=ToyPoses(64), val_set=ToyPoses(6, seed=1),
                   info=DistInfo(rank=rank, world_size=world_size, local_rank=rank))
    torch.save(result.model.state_dict(), Path(out_dir) / f"replica{rank}.pt")


def _reference_run(params) -> torch.nn.Module:
    """One process computing what two DDP replicas compute: per step, each replica's shard goes through the network
    on its own (per-replica BatchNorm statistics), the two losses are averaged (DDP averages the gradients) and one
    RMSprop step is taken on the global batch."""
    train_set = ToyPoses(64)
    torch.manual_seed(params.seeds[0])
    network = create_model(stacks=1, features=16, joints=16).to(memory_format=torch.channels_last)
    optimizer = torch.optim.RMSprop(network.parameters(), lr=params.train.lr, alpha=0.99, eps=1e-8)
    per_rank = params.train.batch_size // 2
    criterion = build_criterion(network.config.supervision)  # target scale 1, as the loss was written here
    for epoch in range(params.train.epochs):
        shards = []
        for rank in range(2):
            sampler = DistributedSampler(train_set, num_replicas=2, rank=rank, shuffle=True, seed=params.seeds[0],
                                         drop_last=True)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        for step in range(len(shards[0]) // per_rank):
            optimizer.zero_grad()
            total = 0.0
            for shard in shards:
                batch = default_collate([train_set[i] for i in shard[step * per_rank:(step + 1) * per_rank]])
                images = batch["image"].to(memory_format=torch.channels_last)
                total = total + criterion(network(images), batch["target"])
            (total / 2).backward()
            optimizer.step()
    return network


def test_two_gloo_processes_keep_replicas_identical_and_match_one_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    replicas = [torch.load(tmp_path / "ddp" / f"replica{r}.pt", weights_only=True) for r in range(2)]
    for name in replicas[0]:
        assert torch.equal(replicas[0][name], replicas[1][name]), f"replicas differ in {name}"
    ddp_ckpt = load_checkpoint(tmp_path / "ddp" / CHECKPOINT_NAME)
    assert ddp_ckpt["step"] == 8 and all(torch.equal(ddp_ckpt["model"][k], replicas[0][k]) for k in replicas[0])

    reference = _reference_run(_ddp_params())
    worst, moved = 0.0, 0.0
    initial = _initial_weights()
    for name, value in reference.named_parameters():
        worst = max(worst, (ddp_ckpt["model"][name] - value.detach()).abs().max().item())
        moved = max(moved, (value.detach() - initial[name]).abs().max().item())
    assert moved > 1e-2 and worst < TOLERANCE, (worst, moved)

    # Validation is sharded over the two processes and gathered: the metrics equal one process scoring the
    # checkpointed weights alone.
    params = _ddp_params()
    single = validate(_load(ddp_ckpt), build_criterion(params.model.supervision, params.train.target_scale),
                      ToyPoses(6, seed=1), params, Precision(torch.device("cpu"), "fp32", True))
    assert ddp_ckpt["history"][-1]["val/pckh/Mean"] == single["val/pckh/Mean"]
    assert ddp_ckpt["history"][-1]["val/loss"] == pytest.approx(single["val/loss"], rel=1e-5)


def _load(state) -> torch.nn.Module:
    network = create_model(stacks=1, features=16, joints=16).to(memory_format=torch.channels_last)
    network.load_state_dict(state["model"])
    return network


TINY_PARAMS = """\
dataset: synthetic
seeds: [0]
model: {stacks: 1, features: 16, input_res: 64}
synthetic: {train_images: 6, valid_images: 3, workers: 1}
preprocess: {workers: 1}
train: {batch_size: 4, epochs: 2, steps_per_epoch: null, val_batch_size: 4, workers: 1, precision: fp32,
        variants: {tiny: {}}}
mlflow: {enabled: false}
"""


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A few synthetic images, preprocessed for 64 px inputs: (params.yaml, processed directory)."""
    from hourglass.config.params_file import load_params
    from hourglass.data.preprocess import preprocess
    from hourglass.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("tiny-data")
    params_path = root / "params.yaml"
    write_params(params_path, TINY_PARAMS)
    params = load_params(params_path)
    generate_dataset(params.synthetic, root / "raw", progress=False)
    preprocess(root / "raw", root / "processed", params, progress=False)
    return params_path, root / "processed"


def test_pipeline_train_under_torchrun(tmp_path, tiny_data):
    params, data = tiny_data
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
           "pipeline.train", "--variant", "tiny", "--seed", "1", "--out", str(tmp_path / "out"),
           "--params", str(params), "--data", str(data)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and "val/pckh/Mean" in metrics and "val/figure4" in metrics
    state = load_checkpoint(tmp_path / "out" / CHECKPOINT_NAME)
    assert state["variant"] == "tiny" and state["seed"] == 1
    assert "train@tiny-1: 2 epochs" in proc.stdout


def test_pipeline_train_reports_bad_input(tmp_path, tiny_data):
    params, data = tiny_data
    from pipeline.train import main

    assert main(["--variant", "nope", "--out", str(tmp_path), "--params", str(params), "--data", str(data)]) == 1
    with pytest.raises(SystemExit):  # argparse: a seed is an integer >= 0
        main(["--variant", "tiny", "--seed", "-1", "--params", str(params), "--data", str(data)])
    assert main(["--variant", "tiny", "--out", str(tmp_path), "--params", str(params), "--data",
                 str(tmp_path / "missing")]) == 1




def _initial_weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(_ddp_params().seeds[0])
    return dict(create_model(stacks=1, features=16, joints=16).named_parameters())
