"""The params.yaml schema: the shipped params files validate and say what they claim; bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from shipped import preset_raw

from hourglass.params_file import ConfigError, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]
FIGURE4 = {"hg", "hg_int", "hg_stacked", "hg_stacked_int", "hg_stacked_add"}


def test_demo_params_train_the_figure4_variants_on_synthetic_data():
    params = load_params(REPO / "params.yaml")
    assert params.dataset == "synthetic"
    assert set(params.sweep) == FIGURE4
    assert params.flows.champion_variant in params.sweep


@pytest.mark.parametrize(("raw", "message"), [
    ({"model": {"supervision": "inter"}}, r"model\.supervision: Input should be 'intermediate', 'final', 'add' or "
                                          r"'resolutions' \(got 'inter'\)"),
    ({"dataset": "coco"}, r"dataset: Value error, dataset 'coco': no card found .*known cards: \['flic', 'mpii', "
                          r"'synthetic', 'synthetic_flic'\]"),
    ({"train": {"lr": 0}}, r"train\.lr: Input should be greater than 0"),
    ({"train": {"batchsize": 4}}, r"train\.batchsize: Extra inputs are not permitted"),
    ({"sweep": ["nope"]}, r"sweep: \['nope'\] not in train\.variants"),
    ({"model": {"input_res": 100}}, r"model\.input_res: Input should be a multiple of 64"),
])
def test_bad_values_name_the_file_the_key_and_the_allowed_values(raw, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_params(preset_raw(raw), "my-params.yaml")
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


def test_a_key_left_out_is_an_error_naming_it_not_the_papers_value(tmp_path):
    """The schema has no defaults: a params file without model.stacks must not quietly train 8 stacks."""
    raw = preset_raw()
    del raw["model"]["stacks"], raw["train"]["lr"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_params(tmp_path / "params.yaml")
    message = str(err.value)
    assert "2 invalid value(s)" in message
    assert "model.stacks: missing; every setting must be written in the params file" in message
    assert "train.lr: missing" in message


def test_seeds_list_the_training_seeds_and_replace_the_single_seed():
    """`seeds` says which training seeds the sweep trains (one per dvc.yaml matrix item); the run's own seed comes
    from its command, so a top-level `seed` is no longer a key (the old params files fail naming it)."""
    assert load_params(REPO / "params.yaml").seeds == (0,)
    assert parse_params(preset_raw({"seeds": [2, 0, 7]})).seeds == (2, 0, 7)  # the order is the matrix's
    raw = preset_raw({"seed": 0})
    with pytest.raises(ConfigError, match=r"  seed: Extra inputs are not permitted"):
        parse_params(raw)
    del raw["seed"], raw["seeds"]
    with pytest.raises(ConfigError, match=r"  seeds: missing; every setting must be written"):
        parse_params(raw)


@pytest.mark.parametrize(("seeds", "message"), [
    ([], r"seeds: Tuple should have at least 1 item"),
    ([0, 1, 0], r"seeds: must be unique, got \[0, 1, 0\]"),
    ([-1], r"seeds\.0: Input should be greater than or equal to 0"),
    ([True], r"seeds\.0: Input should be a valid integer"),
    ([1.5], r"seeds\.0: Input should be a valid integer"),
    (["1"], r"seeds\.0: Input should be a valid integer"),
    (3, r"seeds: Input should be a valid tuple"),
])
def test_bad_seeds_are_refused_naming_the_key(seeds, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(preset_raw({"seeds": seeds}), "my-params.yaml")
