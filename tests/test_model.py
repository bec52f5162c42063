"""The network against hg.lua: exact parameter counts, shapes, supervision modes, no unused parameters."""

import pytest
import torch

from hourglass import create_model
from hourglass.model import count_parameters
from hourglass.supervision import final_heatmaps
from hourglass.supervision import supervised as supervised_outputs

# The parameter counts of pose-hg-train's hg.lua network: 16 joints, 256 features, 1 module per location.
HG_LUA_PARAMS = {1: 3_426_448, 2: 6_570_400, 4: 12_858_304, 8: 25_434_112}


@pytest.mark.parametrize("stacks", sorted(HG_LUA_PARAMS))
def test_parameter_counts_match_hg_lua(stacks):
    assert count_parameters(create_model(stacks=stacks)) == HG_LUA_PARAMS[stacks]


def test_flic_joint_count_changes_only_the_heatmap_layers():
    # 8 stacks, 11 FLIC joints: hg.lua's count with 11-channel heatmap layers.
    assert count_parameters(create_model(stacks=8, joints=11)) == 25_414_872


def test_modules_per_location_scales_residuals():
    one, two = create_model(stacks=1, modules=1), create_model(stacks=1, modules=2)
    residual = 214_528  # one 256-channel pre-activation residual
    # 13 hourglass residuals + 1 head residual per module count.
    assert count_parameters(two) - count_parameters(one) == 14 * residual


@pytest.mark.parametrize("res", [128, 256])
def test_every_stack_is_returned_at_quarter_resolution(res):
    model = create_model(stacks=3, features=32, joints=16).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, res, res))
    assert out.stacks.shape == (2, 3, 16, res // 4, res // 4) and out.levels == ()


@pytest.mark.parametrize("supervision,stacks,k,levels", [
    ("intermediate", 2, 2, 0), ("final", 2, 1, 0), ("add", 2, 1, 0), ("resolutions", 2, 1, 3), ("resolutions", 1, 1, 3),
])
def test_no_parameter_goes_unused(supervision, stacks, k, levels):
    # What the trainer does: the forward with the auxiliary maps, every supervised tensor in the loss.
    torch.manual_seed(0)
    model = create_model(stacks=stacks, features=16, joints=4, supervision=supervision)
    out, maps = model(torch.rand(2, 3, 64, 64))
    supervised = supervised_outputs(out, supervision)
    assert supervised.shape[1] == k and len(maps) == levels
    (supervised.square().mean() + sum(m.square().mean() for m in maps)).backward()
    # Unused means outside the autograd graph (grad None), what DDP rejects. A value test would be wrong: a
    # convolution bias followed by BatchNorm has a gradient of exactly zero in exact arithmetic (BatchNorm removes
    # the mean), so whether rounding leaves it at 0.0 or 1e-10 depends on the CPU's kernels.
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert unused == []


@pytest.mark.parametrize("res", [128, 256])
def test_resolutions_mode_returns_the_top_down_path_coarse_to_fine(res):
    model = create_model(stacks=1, modules=2, features=16, joints=5, supervision="resolutions").eval()
    x = torch.rand(2, 3, res, res)
    with torch.no_grad():
        out, maps = model(x)
    assert out.shape == (2, 1, 5, res // 4, res // 4)  # the stacks' shape is every mode's
    assert [tuple(m.shape) for m in maps] == [(2, 5, res // s, res // s) for s in (32, 16, 8)]
    assert torch.equal(final_heatmaps(out, "resolutions"), out[:, -1])


def test_resolutions_heads_add_only_their_own_parameters():
    hg, hg_int = create_model(stacks=1, modules=2), create_model(stacks=1, modules=2, supervision="resolutions")
    assert count_parameters(hg_int) - count_parameters(hg) == 3 * (256 * 16 + 16)  # three 1x1 convs, 256 -> 16
    # The other modes have no auxiliary heads and no new state_dict keys, so earlier checkpoints still load.
    assert not any("auxiliary" in key for key in hg.state_dict())
    with torch.no_grad():
        _, maps = create_model(stacks=2, features=16, joints=4).eval()(torch.rand(1, 3, 64, 64))
    assert maps == ()


def test_add_supervision_predicts_the_sum_of_stacks():
    model = create_model(stacks=2, features=16, joints=4, supervision="add").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x).stacks
        assert torch.allclose(final_heatmaps(out, model.config.supervision), out.sum(dim=1))


def test_stem_width_narrows_only_the_stem():
    paper, narrow = create_model(stacks=2, features=32), create_model(stacks=2, features=32, stem_width=32)
    assert narrow.stem[0].out_channels == 16 and paper.stem[0].out_channels == 64
    stem_params = lambda m: sum(p.numel() for p in m.stem.parameters())  # noqa: E731
    assert stem_params(narrow) < stem_params(paper) / 9
    assert count_parameters(paper) - stem_params(paper) == count_parameters(narrow) - stem_params(narrow)
    with torch.no_grad():
        assert narrow.eval()(torch.rand(1, 3, 64, 64)).stacks.shape == (1, 2, 16, 16, 16)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="stem_width"):
        create_model(stem_width=30)
    with pytest.raises(ValueError, match="supervision"):
        create_model(supervision="int")
    with pytest.raises(ValueError, match="features"):
        create_model(features=30)


def test_the_model_rebuilds_from_its_own_config():
    model = create_model(stacks=2, features=16, modules=2, joints=14, supervision="resolutions", stem_width=32)
    rebuilt = create_model(**model.config.as_record())
    assert rebuilt.config == model.config
    assert rebuilt.load_state_dict(model.state_dict()) is not None  # same layers, same shapes


def test_a_served_checkpoint_keeps_the_stem_width(tmp_path):
    from hourglass.inference.runner import load_model
    from hourglass.io.checkpoint import save_checkpoint
    from hourglass.tracking.runs import serving_checkpoint

    model = create_model(stacks=1, features=16, joints=14, stem_width=32)
    save_checkpoint(serving_checkpoint(model, 64, {"dataset": "mpii"}), tmp_path / "checkpoint.pt")
    loaded = load_model(tmp_path)
    assert loaded.model.config == model.config and loaded.model_config.stem_width == 32
