"""The params.yaml schema: the shipped params files validate and say what they claim; bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hourglass.config import ConfigError, load_params, parse_params
from hourglass.family import champion_metric
from hourglass.model import create_model

REPO = Path(__file__).resolve().parents[1]
FIGURE4 = {"hg", "hg_int", "hg_stacked", "hg_stacked_int", "hg_stacked_add"}


def test_demo_params_train_the_figure4_variants_on_synthetic_data():
    params = load_params(REPO / "params.yaml")
    assert params.dataset == "synthetic"
    assert set(params.sweep) == FIGURE4
    assert params.flows.champion_variant in params.sweep


def test_mpii_params_are_the_papers_recipe_with_every_ablation():
    params = load_params(REPO / "params-mpii.yaml")
    assert params.dataset == "mpii"
    assert set(params.sweep) == FIGURE4 | {"s2m4", "s4m2", "s8m1"}
    m, t = params.model, params.train
    assert (m.stacks, m.features, m.modules, m.input_res, m.stem_width) == (8, 256, 1, 256, 128)
    assert (t.optimizer, t.lr, t.batch_size, t.schedule, t.plateau_factor) == ("rmsprop", 2.5e-4, 6, "plateau", 0.2)
    assert (params.targets.sigma, params.targets.radius) == (1.75, 3)
    a = params.augment
    assert (a.scale_sigma, a.rotation_sigma, a.rotation_prob, a.flip_prob) == (0.25, 30.0, 0.4, 0.5)
    # The stack-count ablation keeps the depth: stacks x modules = 8 residual modules per location.
    for name in ("s2m4", "s4m2", "s8m1"):
        v = t.variants[name]
        assert v.stacks * v.modules == 8
    # s8m1 is the paper's network: exactly hg.lua's 25,434,112 parameters with 16 joints.
    s8 = t.variants["s8m1"]
    net = create_model(stacks=s8.stacks, features=m.features, modules=s8.modules, joints=16)
    assert sum(p.numel() for p in net.parameters()) == 25_434_112


def test_flic_params_train_one_hourglass_without_intermediate_supervision():
    params = load_params(REPO / "params-flic.yaml")
    assert params.dataset == "flic"
    assert params.sweep == ("hg",)
    hg = params.train.variants["hg"]
    assert hg.stacks == 1 and hg.supervision == "final"
    assert params.flows.champion_metric is None and champion_metric(params) == "val/pck/Mean"


def test_the_params_files_differ_only_where_they_mean_to():
    """Sections the real-data files do not change stay identical to params.yaml, so they cannot drift apart."""
    demo = yaml.safe_load((REPO / "params.yaml").read_text())
    for name in ("params-mpii.yaml", "params-flic.yaml"):
        other = yaml.safe_load((REPO / name).read_text())
        assert other.keys() == demo.keys(), name
        for section in ("download", "preprocess", "synthetic", "report"):
            assert other[section] == demo[section], (name, section)
        assert other["train"]["variants"] == demo["train"]["variants"], name


@pytest.mark.parametrize(("raw", "message"), [
    ({"model": {"supervision": "inter"}}, r"model\.supervision: Input should be 'intermediate', 'final', 'add' or "
                                          r"'resolutions' \(got 'inter'\)"),
    ({"dataset": "coco"}, r"dataset: Input should be 'synthetic', 'mpii' or 'flic' \(got 'coco'\)"),
    ({"train": {"lr": 0}}, r"train\.lr: Input should be greater than 0"),
    ({"train": {"batchsize": 4}}, r"train\.batchsize: Extra inputs are not permitted"),
    ({"sweep": ["nope"]}, r"sweep: \['nope'\] not in train\.variants"),
    ({"model": {"input_res": 100}}, r"model\.input_res: Input should be a multiple of 64"),
])
def test_bad_values_name_the_file_the_key_and_the_allowed_values(raw, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_params(raw, "my-params.yaml")
    assert str(err.value).startswith("my-params.yaml: ")


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: expected a mapping"):
        load_params(bad)


def test_dotted_overrides_apply_before_validation():
    params = load_params(REPO / "params.yaml", {"model.stacks": 4, "train.lr": 1e-3})
    assert params.model.stacks == 4 and params.train.lr == 1e-3
    with pytest.raises(ConfigError, match=r"model\.stacks"):
        load_params(REPO / "params.yaml", {"model.stacks": 0})
