"""The params.yaml schema: the shipped params files validate and say what they claim; bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from shipped import preset_raw

from hourglass.config.params_file import ConfigError, load_params, parse_params

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


def test_the_model_section_is_the_networks_own_config():
    """params.yaml's ``model`` keys are hourglass.model.NetworkConfig's fields (but ``joints``, which the dataset
    gives) plus ``input_res``, and the schema refuses what the network refuses."""
    import dataclasses

    from pydantic import ValidationError

    from hourglass.config import ModelConfig
    from hourglass.model import NetworkConfig

    network = {f.name for f in dataclasses.fields(NetworkConfig)}
    assert set(ModelConfig.model_fields) == (network - {"joints"}) | {"input_res"}
    good = load_params(REPO / "params.yaml").model.model_dump()
    for key, bad in (("stacks", 0), ("features", 30), ("modules", 0), ("stem_width", 6), ("supervision", "int")):
        with pytest.raises(ValueError, match=key):
            NetworkConfig(**{key: bad})
        with pytest.raises(ValidationError, match=key):
            ModelConfig.model_validate({**good, key: bad})
    built = NetworkConfig(**load_params(REPO / "params.yaml").model.network_kwargs(), joints=16)
    assert built.as_record() == {**{k: good[k] for k in network - {"joints"}}, "joints": 16}


def test_a_variant_overrides_keys_of_any_section():
    from hourglass.train.run_config import resolve_variant

    raw = preset_raw({"train": {"variants": {"x": {"model": {"stacks": 1}, "train": {"lr": 1.0e-3},
                                                   "targets": {"sigma": 1.5}, "augment": {"flip_prob": 0.5}}}}})
    params = parse_params(raw)
    resolved = resolve_variant(params, "x")
    assert (resolved.model.stacks, resolved.train.lr, resolved.targets.sigma, resolved.augment.flip_prob) == \
        (1, 1.0e-3, 1.5, 0.5)
    assert (resolved.model.features, resolved.train.batch_size, resolved.targets.radius) == \
        (params.model.features, params.train.batch_size, params.targets.radius)  # keys left out keep their values
    assert (params.train.lr, params.model.stacks) == (7.0e-3, 2)  # the sections themselves are unchanged


@pytest.mark.parametrize(("variant", "message"), [
    ({"train": {"lr": -1}}, r"train\.variants\.x\.train\.lr: Input should be greater than 0"),
    ({"targets": {"sigmaa": 1}}, r"train\.variants\.x\.targets\.sigmaa: Extra inputs are not permitted"),
    ({"stacks": 1}, r"\['stacks'\] are not sections; a variant overrides keys of \['model', 'targets', 'augment', "
                    r"'train'\], e.g. \{model: \{stacks: \.\.\.\}\}"),
    ({"train": {"variants": {}}}, "a variant cannot define variants"),
])
def test_a_bad_variant_override_names_the_variant_and_the_key(variant, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(preset_raw({"train": {"variants": {"x": variant}}}))
