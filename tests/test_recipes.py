"""Recipes hold only what differs from params.yaml; applied, they give the paper's configurations, validated."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml
from shipped import PARAMS, REPO, preset_raw, recipe, recipe_raw

from hourglass.config.params_file import load_params
from hourglass.config.recipes import RecipeError, apply_recipe, changed_keys, composed_params, recipe_chain, recipe_path
from hourglass.family import champion_metric
from hourglass.model import create_model
from pipeline.recipe import main

FIGURE4 = {"hg", "hg_int", "hg_stacked", "hg_stacked_int", "hg_stacked_add"}
# What a real-data recipe may change in the CPU preset: the data, the variants, the network's size, the targets,
# the geometric augmentation the CPU demo turns off, the training recipe (with its per-epoch validation), and the
# names of its runs. Never the download sources, the preprocessing, the variants' definitions, the synthetic data or
# the report.
RECIPE_MAY_CHANGE = {
    "dataset", "sweep", "model.stacks", "model.features", "model.input_res", "model.stem_width", "targets.sigma",
    "targets.radius", "augment.scale_sigma", "augment.rotation_prob", "augment.flip_prob", "train.batch_size",
    "train.epochs", "train.steps_per_epoch", "train.workers", "train.optimizer", "train.lr", "train.schedule",
    "train.warmup_steps", "train.target_scale", "train.val_people", "mlflow.sweep", "flows.champion_variant",
}


@pytest.mark.parametrize("name", ["mpii", "flic"])
def test_each_recipe_validates_and_differs_from_the_preset_only_where_it_should(name):
    changed = changed_keys(preset_raw(), recipe_raw(name))
    assert changed <= RECIPE_MAY_CHANGE, changed - RECIPE_MAY_CHANGE
    assert {"dataset", "model.stacks", "train.lr"} <= changed


@pytest.mark.parametrize("name", ["mpii", "flic"])
def test_a_recipe_writes_no_value_twice(name):
    """Every key a recipe sets changes something: a value equal to the preset's (or, for FLIC, to the MPII recipe's
    it extends) would be a second home of that value."""
    base = preset_raw()
    for source, overlay in recipe_chain(recipe_path(name, REPO / "recipes")):
        applied = composed_params(PARAMS, source) if source.stem != name else None
        for key in changed_keys({}, overlay):
            node_before, node_overlay = base, overlay
            for part in key.split("."):
                node_before, node_overlay = node_before[part], node_overlay[part]
            assert node_before != node_overlay, f"{source}: {key} repeats the value it already has"
        base = applied or base


def test_mpii_recipe_is_the_papers_with_every_ablation():
    params = recipe("mpii")
    assert params.dataset == "mpii"
    assert set(params.sweep) == FIGURE4 | {"s2m4", "s4m2", "s8m1"}
    m, t = params.model, params.train
    assert (m.stacks, m.features, m.modules, m.input_res, m.stem_width) == (8, 256, 1, 256, 128)
    assert (t.optimizer, t.lr, t.batch_size, t.schedule, t.plateau_factor, t.plateau_max_drops) == \
        ("rmsprop", 2.5e-4, 6, "plateau", 0.2, 1)
    assert t.val_people is None  # the plateau schedule follows every validation person's score
    assert (t.epochs, t.steps_per_epoch, t.warmup_steps, t.target_scale) == (100, 8000, 0, 1.0)
    assert (params.targets.sigma, params.targets.radius) == (1.75, 3)
    a = params.augment
    assert (a.scale_sigma, a.scale_clip, a.rotation_sigma, a.rotation_clip, a.rotation_prob, a.flip_prob) == \
        (0.25, 2.0, 30.0, 60.0, 0.4, 0.5)
    for name in ("s2m4", "s4m2", "s8m1"):  # the stack-count ablation keeps 8 residual modules per location
        v = t.variants[name].model
        assert v["stacks"] * v["modules"] == 8
    s8 = params.with_variant("s8m1").model  # the paper's network: exactly hg.lua's 25,434,112 parameters with 16 joints
    net = create_model(stacks=s8.stacks, features=m.features, modules=s8.modules, stem_width=m.stem_width, joints=16)
    assert sum(p.numel() for p in net.parameters()) == 25_434_112
    assert champion_metric(params) == "eval/pckh/Mean"


def test_flic_recipe_extends_mpii_with_one_hourglass_and_its_schedule():
    params, mpii = recipe("flic"), recipe("mpii")
    assert [p.name for p, _ in recipe_chain(recipe_path("flic", REPO / "recipes"))] == ["mpii.yaml", "flic.yaml"]
    assert params.dataset == "flic" and params.sweep == ("hg",)
    hg = params.with_variant("hg").model
    assert hg.stacks == 1 and hg.supervision == "final"
    assert (params.train.epochs, params.train.steps_per_epoch) == (50, 2000)
    assert params.model == mpii.model and params.augment == mpii.augment and params.train.lr == mpii.train.lr
    assert champion_metric(params) == "eval/pck/Mean"


def test_applying_a_recipe_rewrites_params_yaml_in_place_keeping_comments(tmp_path):
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    assert main(["flic", "--params", str(tmp_path / "params.yaml"), "--recipes", str(tmp_path / "recipes")]) == 0
    text = (tmp_path / "params.yaml").read_text()
    assert yaml.safe_load(text) == recipe_raw("flic")
    assert load_params(tmp_path / "params.yaml").dataset == "flic"
    # untouched keys keep their comments and spelling; changed ones carry the recipe's comment
    assert '  cron: "0 3 * * *"    # the scheduled-retrain deployment' in text
    assert "  margin: null         # null: derived from augment" in text
    assert "  lr: 2.5e-4           # the paper's RMSprop rate" in text
    assert "CPU demo: off" not in text.split("augment:")[1].split("preprocess:")[0]
    # applying it again changes nothing
    before = text
    assert apply_recipe(tmp_path / "params.yaml", tmp_path / "recipes" / "flic.yaml") == []
    assert (tmp_path / "params.yaml").read_text() == before


def test_a_recipe_with_an_unknown_or_invalid_key_writes_nothing(tmp_path):
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    original = (tmp_path / "params.yaml").read_text()
    (tmp_path / "typo.yaml").write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(RecipeError, match=r"typo\.yaml: 'train\.learning_rate' is not a key of the params file"):
        apply_recipe(tmp_path / "params.yaml", tmp_path / "typo.yaml")
    (tmp_path / "bad.yaml").write_text("model:\n  stacks: 0\n")
    with pytest.raises(RecipeError, match=r"model\.stacks: Input should be greater than or equal to 1"):
        apply_recipe(tmp_path / "params.yaml", tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("extends: loop\ndataset: mpii\n")
    with pytest.raises(RecipeError, match="cycle"):
        apply_recipe(tmp_path / "params.yaml", tmp_path / "loop.yaml")
    assert (tmp_path / "params.yaml").read_text() == original
    assert main(["nope", "--params", str(tmp_path / "params.yaml"), "--recipes", str(REPO / "recipes")]) == 2


def test_a_recipe_may_add_variants():
    raw = preset_raw()
    from hourglass.config.recipes import compose

    extra = {"train": {"variants": {"s16": {"model": {"stacks": 16}}}}, "sweep": ["s16"]}
    out = compose(raw, [(Path("extra.yaml"), extra)])
    assert out["train"]["variants"]["s16"] == {"model": {"stacks": 16}}
    assert out["train"]["variants"]["hg"] == raw["train"]["variants"]["hg"]


def test_dvc_params_diff_shows_what_a_recipe_changed(tmp_path):
    """The user's path: a fresh repository on the preset, the recipe applied, DVC sees an ordinary params change."""
    import json

    from dvc_project import dvc, make_project, run

    env = make_project(tmp_path, preset_raw())
    run([sys.executable, "-m", "pipeline.recipe", "flic"], tmp_path, env)
    diff = json.loads(dvc(["params", "diff", "--json"], tmp_path, env).stdout)["params.yaml"]
    assert (diff["dataset"]["old"], diff["dataset"]["new"]) == ("synthetic", "flic")
    assert (diff["train.lr"]["old"], diff["train.lr"]["new"]) == (7.0e-3, 2.5e-4)
    assert (diff["model.stacks"]["old"], diff["model.stacks"]["new"]) == (2, 8)
    assert set(diff) == changed_keys(preset_raw(), recipe_raw("flic"))  # exactly the recipe's settings
    status = dvc(["status", "--json"], tmp_path, env).stdout
    assert "download" in status  # nothing has run yet: every stage is out of date, none refuses the params
