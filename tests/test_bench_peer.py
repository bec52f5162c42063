"""``python -m hourglass.bench peer`` and its replica of peer A (princeton-vl/pytorch_stacked_hourglass).

The golden test: the port's own fixture checkpoint (``shared/anchor-data/pytorch_stacked_hourglass/
checkpoint-fixture``, written by that repository's code, see SOURCES.md) loads into the replica with ``strict=True``,
its Adam state fits the replica's parameters in order, and the replica reproduces the heatmaps the port's network
recorded in ``io.npz`` from the same NHWC input. The parameter counts are those of shared/reference/
paper-and-peers.md 1.3. The benchmark itself runs at tiny sizes (its figures mean nothing there).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hourglass.bench import peer_a
from hourglass.bench.__main__ import main
from hourglass.model import count_parameters, create_model
from hourglass.train.losses import heatmap_loss
from hourglass.weights.port import convert_state_dict, infer_architecture

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURE = "pytorch_stacked_hourglass/checkpoint-fixture"
GOLDEN_ATOL = 1e-5  # same operations in the same order: only the CPU kernels' float32 rounding may differ


def _meta_count(nstack: int, used_only: bool = False) -> int:
    with torch.device("meta"):
        model = peer_a.PoseNet(nstack, 256, 16)
    if not used_only:
        return peer_a.count_parameters(model)
    unused = sum(p.numel() for m in model.modules() if isinstance(m, peer_a.Residual) and not m.need_skip
                 for p in m.skip_layer.parameters())
    return peer_a.count_parameters(model) - unused


def test_replica_has_the_ports_parameter_counts():
    # paper-and-peers.md 1.3: sum(p.numel()) of the port's PoseNet, its unused skip convolutions included ...
    assert _meta_count(2) == 8_429_088
    assert _meta_count(8) == 32_819_328
    # ... and without them, hg.lua's analytic count, which is also ours
    assert _meta_count(2, used_only=True) == 6_570_400 == count_parameters(create_model(stacks=2))
    assert _meta_count(8, used_only=True) == 25_434_112


def test_replica_is_our_network_under_the_importers_renaming():
    """The port importer's key map takes the replica's state dict onto ours, and ours then computes the replica's
    heatmaps (from the same pixels, NCHW) and, times the stacks, its loss."""
    torch.manual_seed(0)
    replica = peer_a.PoseNet(2, 16, 16)
    for module in replica.modules():  # non-trivial BN statistics, so a mis-mapped tensor shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    state = replica.state_dict()
    arch = infer_architecture(state)
    converted, dropped, filled = convert_state_dict(state, arch)
    assert not filled and len(dropped) == 2 * (1 + 2 * 14)  # pre.3 and 14 residuals per stack: weight and bias
    ours = create_model(**arch.network_kwargs())
    ours.load_state_dict(converted)
    replica.eval()
    ours.eval()
    nhwc = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(1))
    target = torch.rand(2, 16, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        theirs, mine = replica(nhwc), ours(nhwc.permute(0, 3, 1, 2).contiguous()).stacks
        assert theirs.shape == mine.shape == (2, 2, 16, 16, 16)
        assert torch.allclose(theirs, mine, atol=1e-5)
        loss = peer_a.train_loss(replica, nhwc, target)
        assert torch.allclose(loss * 2, heatmap_loss(mine, target), rtol=1e-5)


def test_replica_train_step_updates_with_adam():
    torch.manual_seed(0)
    replica = peer_a.PoseNet(1, 8, 16).train()
    optimizer = peer_a.create_optimizer(replica)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 1e-3
    before = replica.outs[0].conv.weight.detach().clone()
    optimizer.zero_grad()
    peer_a.train_loss(replica, torch.rand(2, 64, 64, 3), torch.rand(2, 16, 16, 16)).backward()
    optimizer.step()
    assert not torch.equal(before, replica.outs[0].conv.weight)
    # the unused skip convolutions get no gradient, as in the port
    assert replica.pre[3].skip_layer.conv.weight.grad is None


@pytest.mark.anchor
def test_replica_reproduces_the_ports_own_outputs(anchor_dir):
    fixture = anchor_dir / FIXTURE
    checkpoint = torch.load(fixture / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = peer_a.PoseNet(nstack=2, inp_dim=64, oup_dim=16)
    model.load_state_dict(peer_a.port_state_dict(checkpoint), strict=True)
    assert peer_a.count_parameters(model) == 678_240  # SOURCES.md
    # the port's Adam state (over Trainer(DataParallel(PoseNet)).parameters()) fits the replica's, in order
    optimizer = peer_a.create_optimizer(model)
    optimizer.load_state_dict(checkpoint["optimizer"])
    for param in model.parameters():
        state = optimizer.state.get(param)
        if state:  # parameters that never got a gradient (the unused skip convolutions) have no Adam state
            assert state["exp_avg"].shape == param.shape
    io = np.load(fixture / "io.npz")
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(io["input_nhwc"])).numpy()
    expected = io["heatmaps"]
    assert out.shape == expected.shape == (2, 2, 16, 64, 64)
    for stack in range(2):
        diff = float(np.abs(out[:, stack] - expected[:, stack]).max())
        print(f"stack {stack + 1}: max abs difference {diff:.3e} (heatmaps up to {np.abs(expected).max():.3f})")
        assert diff <= GOLDEN_ATOL, f"stack {stack + 1}: max abs difference {diff}"


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["peer", "--help"])
    text = capsys.readouterr().out
    for option in ("--stacks", "--features", "--res", "--batch", "--iters", "--warmup", "--precision", "--json",
                   "--params", "--recipe", "--no-exported", "--no-train", "--threads"):
        assert option in text


def _tiny(tmp_path, *extra: str) -> dict:
    out = tmp_path / "peer.json"
    assert main(["peer", "--stacks", "2", "--features", "8", "--res", "64", "--batch", "2", "--iters", "2",
                 "--warmup", "0", "--threads", "1", "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_tiny_run_times_both_sides_in_one_run(tmp_path, capsys):
    result = _tiny(tmp_path, "--precision", "fp32", "--no-exported")
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == result
    train, infer = result["train"], result["infer"]
    assert set(train) == {"peer_a", "ours_fast", "ours_fp32_channels_last"}
    assert train["ours_fp32_channels_last"]["same_as"] == "ours_fast"  # fp32 channels_last is the fast path here
    assert set(infer) == {"peer_a", "torch"}
    for row in (*train.values(), *infer.values()):
        assert len(row["times_s"]) == 2 and row["best_s"] == min(row["times_s"]) and row["img_s"] > 0
    assert train["peer_a"]["ratio_to_peer_a"] == 1.0
    ratio = train["peer_a"]["best_s"] / train["ours_fast"]["best_s"]
    assert train["ours_fast"]["ratio_to_peer_a"] == pytest.approx(ratio, rel=1e-3)
    assert result["peer_a"]["parameters"] > result["ours"]["parameters"]  # the port's unused skip convolutions
    assert result["peer_a"]["activation_layout"] == "channels_last"  # its permuted NHWC input
    assert result["setup"]["peer_a"]["optimizer"] == "adam" and result["setup"]["ours"]["heap"] == "kept_heap"
    assert result["cpu"]["isa"] and isinstance(result["cpu"]["isa_caps_allow_bf16"], bool)
    assert len(result["load_average"]["before"]) == 3
    assert result["bars"]["train"]["applies"] is False  # not the bars' 2 x 256 x 256 px
    assert result["skipped"] == {name: "--no-exported" for name in
                                 ("onnxruntime", "openvino", "onnxruntime_int8", "openvino_int8")}


def test_tiny_run_on_the_exported_runtimes(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    result = _tiny(tmp_path, "--no-train", "--stacks", "1", "--features", "4")
    assert "train" not in result and "onnxruntime" in result["infer"]
    bar = result["bars"]["infer"]
    exported = ("onnxruntime", "openvino", "onnxruntime_int8", "openvino_int8")
    assert "onnxruntime_int8" in result["infer"]
    assert bar["runtime"] in exported and bar["applies"] is False
    assert bar["ratio"] == max(result["infer"][k]["ratio_to_peer_a"] for k in exported if k in result["infer"])
