"""Your own keypoints, the user's path on real COCO-format exports: ``pipeline.dataset add`` -> ``dvc repro`` in a
fresh repo (import, crops, training, evaluation with PCK, EPE and OKS AP, the report) -> ``hourglass predict`` with an
overlay. The files are mmpose's test data with their real images: COCO people (17 keypoints, split by file name),
CrowdPose (14) and OneHand10K hands (21, no sides, no sigmas)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc_project import REPO, dvc, make_project, merge, run

from hourglass.evaluation.coco_eval import score_coco_results

pytestmark = pytest.mark.anchor

# Only size knobs shrunk: a tiny network, one variant, two epochs; flips on (the cards' pairs swap the sides).
TINY = {
    "preprocess": {"workers": 1},
    "model": {"features": 16, "input_res": 64},
    "augment": {"flip_prob": 0.5},
    "train": {"epochs": 2, "steps_per_epoch": None, "batch_size": 4, "val_batch_size": 8, "workers": 0,
              "log_every": 1, "optimizer": "adam", "lr": 1e-3, "precision": "fp32"},
    "mlflow": {"enabled": False},
    "report": {"examples": 2},
    "sweep": ["hg_stacked_int"],
    "flows": {"champion_variant": "hg_stacked_int"},
}
# A skeleton and spelling the code has never seen: COCO's people relabelled as a quadruped's keypoints whose side
# tokens are a capital L/R after the word or before a digit, in two categories ("species") sharing one list.
ANIMAL_NAMES = ("Nose", "eyeL", "eyeR", "earL", "earR", "forelegL1", "forelegR1", "forelegL2", "forelegR2",
                "forelegL3", "forelegR3", "hindlegL1", "hindlegR1", "hindlegL2", "hindlegR2", "hindlegL3", "hindlegR3")
# name, folder and file in shared/anchor-data/mmpose/tests/data, --val (False: split by file name), what `add` infers
DATASETS = {
    "people": ("coco", "test_coco.json", False, {"keypoints": 17, "pairs": 8, "train": 9, "valid": 3, "skipped": 2}),
    "hands": ("onehand10k", "test_onehand10k.json", True, {"keypoints": 21, "pairs": 0, "train": 4, "valid": 4,
                                                           "skipped": 0}),
    "crowd": ("crowdpose", "test_crowdpose.json", True, {"keypoints": 14, "pairs": 6, "train": 4, "valid": 4,
                                                         "skipped": 1}),
    "animals": ("coco", "animals.json", True, {"keypoints": 17, "pairs": 8, "train": 12, "valid": 12, "skipped": 2}),
}


def animals_file(source: Path, out: Path) -> Path:
    """COCO's people file with ANIMAL_NAMES as keypoints and every other annotation in a second category."""
    data = json.loads((source / "coco" / "test_coco.json").read_text())
    first = data["categories"][0]
    data["categories"] = [{**first, "id": 1, "name": "cat", "keypoints": list(ANIMAL_NAMES)},
                          {**first, "id": 2, "name": "dog", "keypoints": list(ANIMAL_NAMES)}]
    for i, annotation in enumerate(data["annotations"]):
        annotation["category_id"] = 1 + i % 2
    out.write_text(json.dumps(data))
    return out


def _add_args(name: str, source: Path, use_val: bool, root: Path) -> list[str]:
    folder, file, _, _ = DATASETS[name]
    coco = animals_file(source, root / file) if name == "animals" else source / folder / file
    args = ["add", name, "--coco", str(coco), "--images", str(source / folder)]
    return args + (["--val", str(coco)] if use_val else ["--valid-fraction", "0.5"])


@pytest.fixture(scope="module", params=[
    "people", "hands", "animals", pytest.param("crowd", marks=pytest.mark.slow)])
def project(request, tmp_path_factory, anchor_dir: Path) -> tuple[str, Path, dict[str, str], str]:
    name = request.param
    source = anchor_dir / "mmpose" / "tests" / "data"
    root = tmp_path_factory.mktemp(f"own-{name}")
    env = make_project(root, merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY))
    added = run([sys.executable, "-m", "pipeline.dataset", *_add_args(name, source, DATASETS[name][2], root)],
                root, env)
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "dataset": name}, sort_keys=False))
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", f"dataset {name}"], root, env)
    dvc(["repro"], root, env)
    return name, root, env, added.stdout


def test_add_writes_a_valid_card_and_says_what_it_inferred(project):
    name, root, _, out = project
    expected = DATASETS[name][3]
    card = yaml.safe_load((root / "datasets" / f"{name}.yaml").read_text())
    assert card["format"] == "coco" and len(card["keypoints"]) == expected["keypoints"]
    assert len(card["flip_pairs"]) == expected["pairs"]
    assert f"keypoints ({expected['keypoints']})" in out
    assert f"people per split: train {expected['train']}, valid {expected['valid']}" in out
    if name == "animals":  # the side token is a capital L/R of its own: eyeL<->eyeR, forelegL1<->forelegR1
        assert card["flip_pairs"][:2] == [["eyeL", "eyeR"], ["earL", "earR"]]
        assert all(a.replace("L", "R", 1) == b and "L" in a for a, b in card["flip_pairs"])
    elif expected["pairs"]:
        assert all(a.replace("left", "right") == b for a, b in card["flip_pairs"])
    else:
        assert "flip pairs: none (no left/right names found)" in out
    assert ("COCO's 17 sigmas" in out) == (name == "people")


def test_the_import_and_preprocess_count_people_and_skips(project):
    name, root, _, _ = project
    expected = DATASETS[name][3]
    imported = json.loads((root / "data/raw" / name / "import.json").read_text())
    assert {s: v["people"] for s, v in imported["splits"].items()} == {"train": expected["train"],
                                                                       "valid": expected["valid"]}
    source = imported["splits"]["train"]["source"]
    assert imported["sources"][source]["no_keypoints"] == expected["skipped"]
    assert imported["sources"][source]["crowd"] == 0 and imported["missing_images"] == []
    summary = json.loads((root / "data/processed" / name / "preprocess.json").read_text())
    assert summary["joints"] == expected["keypoints"]
    assert summary["split_rows"] == {"train": expected["train"], "valid": expected["valid"]}
    assert summary["skipped_annotations"] == ({source: {"no_keypoints": expected["skipped"]}}
                                              if expected["skipped"] else {source: {}})


def test_training_and_evaluation_score_the_cards_keypoints(project):
    name, root, env, _ = project
    keypoints = yaml.safe_load((root / "datasets" / f"{name}.yaml").read_text())["keypoints"]
    trained = json.loads((root / "models/hg_stacked_int/seed-0/metrics.json").read_text())
    assert "val/pck/Mean" in trained and all(f"val/pck/joint/{k}" in trained for k in keypoints)
    evaluation = json.loads((root / "models/hg_stacked_int/seed-0/eval/metrics.json").read_text())
    assert evaluation["metric"] == "PCK@0.2" and list(evaluation["per_joint"]) == keypoints
    coco = evaluation["coco"]
    assert coco["EPE"] > 0 and 0 <= coco["PCK@0.2"] <= 100
    assert (coco["AP"] is not None) == (name == "people")  # OKS AP where sigmas are known (COCO's 17)
    # the results file is COCO's format: scored again through the CLI and directly, the same numbers
    results = root / "models/hg_stacked_int/seed-0/eval/results.json"
    truth = root / "data/raw" / name / "annot/valid.json"
    cli = subprocess.run([sys.executable, "-m", "hourglass.evaluation", str(results), "--gt", str(truth), "--json",
                          "--dataset", name], cwd=root, env=env, capture_output=True, text=True, check=True)
    again = json.loads(cli.stdout)
    assert again["EPE"] == pytest.approx(coco["EPE"]) and again["AP"] == coco["AP"]
    direct = score_coco_results(results, truth, sigmas=None)
    assert direct.epe == pytest.approx(coco["EPE"])


def test_report_tables_the_cards_names_without_paper_rows(project):
    name, root, _, _ = project
    text = (root / "reports/results.md").read_text()
    body = text.split("## Provenance")[0]
    assert f"results ({name})" in text and "PCK@0.2" in body
    keypoints = yaml.safe_load((root / "datasets" / f"{name}.yaml").read_text())["keypoints"]
    assert all(f"| {k} |" in body for k in keypoints)  # the per-joint table
    assert "paper:" not in body and "PCKh" not in body


def test_predict_uses_the_cards_names_and_draws_an_overlay(project, anchor_dir: Path):
    name, root, env, _ = project
    folder, file, _, _ = DATASETS[name]
    data = json.loads(((root / file) if name == "animals" else (anchor_dir / "mmpose/tests/data" / folder / file))
                      .read_text())
    image = anchor_dir / "mmpose/tests/data" / folder / data["images"][0]["file_name"]
    out = root / "pred.json"
    run([sys.executable, "-m", "hourglass.cli", "predict", "-m", "models/hg_stacked_int/seed-0", str(image),
         "--json", str(out), "--overlay", str(root / "overlay"), "--precision", "fp32", "--no-progress"], root, env)
    result = json.loads(out.read_text())
    assert result["joint_names"] == data["categories"][0]["keypoints"]
    assert result["trained_on"]["dataset"] == name
    assert list((root / "overlay").glob("*.png"))
