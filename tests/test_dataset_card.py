"""Dataset cards: the shipped cards are valid and mean what the code always meant; a bad card is an error naming
the key or value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hourglass.dataset_card import SHIPPED_CARDS, CardError, card_path, load_card, parse_card, read_card

HAND = {
    "name": "hand", "description": "a hand", "format": "coco",
    "keypoints": ["wrist", "thumb1", "thumb2"], "flip_pairs": [], "skeleton": [["wrist", "thumb1"],
                                                                              ["thumb1", "thumb2"]],
    "sides": "person", "crop": "box",
    "measure": {"metric": "PCK", "normalize": "box", "threshold": 0.2, "curve_max": 0.2},
    "coco": {"train": "a.json", "valid": None, "images": "img", "valid_fraction": 0.2},
}
PAWS = {**HAND, "name": "paws", "keypoints": ["nose", "left_paw", "right_paw", "tail"],
        "flip_pairs": [["left_paw", "right_paw"]], "skeleton": [["nose", "left_paw"], ["nose", "right_paw"]]}


def test_shipped_cards_are_valid_and_named_by_their_files():
    names = sorted(p.stem for p in SHIPPED_CARDS.glob("*.yaml"))
    assert names == ["flic", "mpii", "synthetic", "synthetic_flic"]
    for name in names:
        card = load_card(name)
        assert card.name == name and Path(card.source_file).resolve() == SHIPPED_CARDS / f"{name}.yaml"
    assert load_card("mpii").published.released is not None and load_card("flic").published.released is None


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "red"}, r"colour: unknown key"),
    ({"measure": {**HAND["measure"], "treshold": 0.2}}, r"measure\.treshold: unknown key"),
    ({"flip_pairs": [["left_paw", "rigth_paw"]]}, r"flip_pairs\[0\]: unknown keypoint name\(s\) \['rigth_paw'\]"),
    ({"skeleton": [["nose", "tial"]]}, r"skeleton\[0\]: unknown keypoint name\(s\) \['tial'\]"),
    ({"flip_pairs": [["left_paw", "right_paw"], ["right_paw", "tail"]]},
     r"flip_pairs: keypoint 'right_paw' is in two pairs \(0 and 1\)"),
    ({"flip_pairs": [["tail", "tail"]]}, r"flip_pairs\[0\]: 'tail' is paired with itself"),
    ({"keypoints": ["nose", "nose"]}, r"keypoints: .*repeated: \['nose'\]"),
    ({"format": "h5"}, r"format: Input should be 'coco', 'mpii_h5', 'flic_h5' or 'synthetic'"),
    ({"measure": {**HAND["measure"], "sigmas": [0.1]}}, r"measure.sigmas: 1 values for 4 keypoints"),
    ({"coco": None}, r"coco: required with format: coco"),
    ({"measure": {**HAND["measure"], "groups": {"Paw": ["left_paw", "paw"]}}},
     r"measure\.groups\.Paw: unknown keypoint name\(s\) \['paw'\]"),
])
def test_a_bad_card_is_an_error_naming_the_key_or_value(change, message):
    with pytest.raises(CardError, match=message):
        parse_card({**PAWS, **change}, "datasets/paws.yaml")


def test_a_card_file_must_be_named_as_its_card_and_be_found_by_name(tmp_path: Path):
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "paws.yaml").write_text(yaml.safe_dump({**PAWS, "name": "dogs"}))
    with pytest.raises(CardError, match=r"paws.yaml: name 'dogs' differs from the file name 'paws'"):
        read_card(folder / "paws.yaml")
    (folder / "paws.yaml").write_text(yaml.safe_dump(PAWS))
    assert card_path("paws", (folder, SHIPPED_CARDS)) == folder / "paws.yaml"
    assert card_path("mpii", (folder, SHIPPED_CARDS)) == SHIPPED_CARDS / "mpii.yaml"  # the shipped ones behind
    with pytest.raises(CardError, match=r"dataset 'cats': no card found .*known cards: \['flic', 'mpii', 'paws'"):
        card_path("cats", (folder, SHIPPED_CARDS))
    (folder / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(CardError, match="bad.yaml: not valid YAML"):
        read_card(folder / "bad.yaml")


def test_a_card_gives_the_flip_permutation_sides_and_table_groups():
    card = parse_card(PAWS)
    assert card.flip_permutation == (0, 2, 1, 3)
    assert card.keypoint_sides == ("centre", "left", "right", "centre")
    assert card.table_groups == {"nose": ("nose",), "Paw": ("left_paw", "right_paw"), "tail": ("tail",)}
    # pairs without side words (a horse's near/off legs): the first member is drawn as the left one
    horse = parse_card({**PAWS, "keypoints": ["nose", "near_fore", "off_fore", "tail"],
                        "flip_pairs": [["off_fore", "near_fore"]], "skeleton": []})
    assert horse.keypoint_sides == ("centre", "right", "left", "centre")
    assert parse_card(HAND).table_groups == {"wrist": ("wrist",), "thumb1": ("thumb1",), "thumb2": ("thumb2",)}


def test_the_card_record_round_trips_and_its_digest_ignores_formatting():
    card = load_card("mpii")
    again = parse_card(card.as_record(), "checkpoint")
    assert again == card.model_copy(update={"source_file": "checkpoint"})
    assert again.digest() == card.digest()


def test_params_find_the_cards_beside_their_file_from_any_directory(tmp_path: Path, monkeypatch):
    """A served flow run starts in another directory: the project's own card is found beside params.yaml."""
    from shipped import preset_raw

    from hourglass.config.params_file import ConfigError, load_params
    from hourglass.family import family_of

    project = tmp_path / "project"
    (project / "datasets").mkdir(parents=True)
    (project / "datasets" / "paws.yaml").write_text(yaml.safe_dump(PAWS))
    (project / "params.yaml").write_text(yaml.safe_dump(preset_raw({"dataset": "paws"})))
    monkeypatch.chdir(tmp_path)  # not the project
    params = load_params(project / "params.yaml")
    assert params.card().name == "paws" and family_of(params).joints.count == 4
    assert params.model_copy(update={"seeds": (1,)}).card().name == "paws"  # copies keep where the cards are
    (project / "other.yaml").write_text(yaml.safe_dump(preset_raw({"dataset": "cats"})))
    with pytest.raises(ConfigError, match=r"dataset 'cats': no card found"):
        load_params(project / "other.yaml")
