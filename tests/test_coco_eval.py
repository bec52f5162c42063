"""COCO keypoint results: AP/AR equal pycocotools' own, PCK/EPE equal mmpose's definitions, the CLI and its errors.

Real COCO-format files (mmpose's test data: COCO, CrowdPose, OneHand10K) are scored against results built from their
own ground truth with known perturbations. Plus Tompson's [2 x J x n] layout in plain h5 prediction files.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hourglass.cli.score import main
from hourglass.evaluation.coco_eval import (
    COCO_SIGMAS,
    STAT_NAMES,
    coco_result_rows,
    score_coco_results,
    write_coco_results,
)
from hourglass.io.eval_files import ReaderError, read_predictions, write_predictions

REPO = Path(__file__).resolve().parents[1]
CROWDPOSE_SIGMAS = [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079]
DATASETS = {  # name: (file under mmpose/tests/data, sigmas to pass; None = COCO's default)
    "coco": ("coco/test_coco.json", None),
    "crowdpose": ("crowdpose/test_crowdpose.json", CROWDPOSE_SIGMAS),
    "onehand10k": ("onehand10k/test_onehand10k.json", [0.025] * 21),
}

@pytest.fixture(scope="module")
def mmpose_data(anchor_dir) -> Path:
    return anchor_dir / "mmpose" / "tests" / "data"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _scored(gt: dict) -> list[dict]:
    """Annotations the scorer scores: not crowd, at least one labelled keypoint."""
    return [a for a in gt["annotations"] if not a.get("iscrowd") and any(v > 0 for v in a["keypoints"][2::3])]


def _kp(ann: dict) -> np.ndarray:
    return np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)


def _row(ann: dict, xy: np.ndarray, score: float, with_id: bool) -> dict:
    kp = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
    row = {"image_id": ann["image_id"], "category_id": ann["category_id"], "keypoints": kp.ravel().tolist(),
           "score": score}
    if with_id:
        row["annotation_id"] = ann["id"]
    return row


def _write(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload))
    return path


def _pycocotools_stats(gt: dict, results_path: Path, sigmas, tmp_path: Path) -> list[float]:
    """pycocotools called directly, as its README does, on the ground truth with the fields COCOeval reads filled
    in the way the module documents (CrowdPose has no 'area', OneHand10K no 'num_keypoints')."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = json.loads(json.dumps(gt))
    for ann in gt["annotations"]:
        ann.setdefault("area", ann["bbox"][2] * ann["bbox"][3])
        ann.setdefault("num_keypoints", sum(v > 0 for v in ann["keypoints"][2::3]))
    gt_path = _write(tmp_path / "gt_for_pycocotools.json", gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(str(results_path))
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.array(COCO_SIGMAS if sigmas is None else sigmas)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def _mmpose_pck(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, bbox_wh: np.ndarray, thr: float) -> float:
    """mmpose's PCKAccuracy(norm_item='bbox'), written from its documentation: normalise by max(w, h) of the bbox
    (both axes), entries with a zero normaliser or an unlabelled keypoint are invalid (-1), a keypoint's accuracy is
    the share of its valid distances ``< thr``, and the PCK the mean over keypoints with a valid entry."""
    size = bbox_wh.max(axis=1)
    normalize = np.stack([size, size], axis=1)
    dist = np.full(mask.shape, -1.0)
    valid = mask & (normalize > 0).all(axis=1)[:, None]
    dist[valid] = np.linalg.norm((pred - gt) / normalize[:, None, :], axis=-1)[valid]
    accs = [float((d[d != -1] < thr).mean()) for d in dist.T if (d != -1).any()]
    return 100.0 * float(np.mean(accs))


def _perturbed(gt: dict, with_id: bool, seed: int = 7):
    """Results from ground truth with known noise, two people dropped, one false positive, shuffled. Returns the rows
    and, per scored annotation in file order, the prediction the scorer must match to it (None when dropped)."""
    rng = np.random.default_rng(seed)
    scored = _scored(gt)
    dropped = set(rng.choice(len(scored), size=2, replace=False).tolist())
    rows, expected = [], []
    for i, ann in enumerate(scored):
        kp = _kp(ann)
        xy = kp[:, :2] + rng.normal(0.0, rng.uniform(1.0, 6.0), size=(len(kp), 2))
        unlabelled = kp[:, 2] == 0
        box = np.asarray(ann["bbox"], dtype=np.float64)
        xy[unlabelled] = box[:2] + box[2:] * rng.uniform(0.2, 0.8, size=(int(unlabelled.sum()), 2))
        if i in dropped:
            expected.append(None)
            continue
        rows.append(_row(ann, xy, float(rng.uniform(0.3, 1.0)), with_id))
        expected.append(xy)
    images_with_drops = {scored[i]["image_id"] for i in dropped}
    host = next(a for a in scored if a["image_id"] not in images_with_drops)  # every person there has a result
    image = next(im for im in gt["images"] if im["id"] == host["image_id"])
    fp_xy = rng.uniform([0, 0], [image["width"], image["height"]], size=(len(_kp(host)), 2))
    rows.append(_row(host, fp_xy, 0.99, with_id=False))
    order = rng.permutation(len(rows))
    return [rows[i] for i in order], expected


# ---------------------------------------------------------------- AP/AR through pycocotools


@pytest.mark.anchor
@pytest.mark.parametrize("name", list(DATASETS))
def test_perfect_predictions_score_full_marks(mmpose_data, name, tmp_path):
    rel, sigmas = DATASETS[name]
    gt = _load(mmpose_data / rel)
    rows = [_row(a, _kp(a)[:, :2], 1.0, with_id=False) for a in _scored(gt)]
    scores = score_coco_results(_write(tmp_path / "results.json", rows), mmpose_data / rel, sigmas=sigmas)
    assert scores.ap == pytest.approx(1.0) and scores.ar == pytest.approx(1.0)
    assert scores.pck == 100.0 and scores.epe == 0.0
    assert scores.matched == len(rows) and scores.unmatched_annotations == scores.unmatched_results == 0
    assert scores.sigmas_source == ("coco" if sigmas is None else "given")


@pytest.mark.anchor
@pytest.mark.parametrize("with_id", [False, True])
@pytest.mark.parametrize("name", list(DATASETS))
def test_perturbed_results_match_pycocotools_and_mmpose_pck(mmpose_data, name, with_id, tmp_path):
    rel, sigmas = DATASETS[name]
    gt = _load(mmpose_data / rel)
    rows, expected = _perturbed(gt, with_id)
    results_path = _write(tmp_path / "results.json", rows)
    scores = score_coco_results(results_path, mmpose_data / rel, sigmas=sigmas)

    reference = _pycocotools_stats(gt, results_path, sigmas, tmp_path)
    for key, ref in zip(STAT_NAMES, reference, strict=True):
        ours = scores.stats[key]
        assert (ours is None and ref == -1) or abs(ours - ref) < 1e-3, (key, ours, ref)
    assert 0.0 < scores.ap < 1.0  # the noise is felt: a real comparison, not 1 == 1

    scored = _scored(gt)
    kps = np.stack([_kp(a) for a in scored])
    truth, mask = kps[..., :2], kps[..., 2] > 0
    pred = np.stack([truth[i] + 1e6 if xy is None else xy for i, xy in enumerate(expected)])  # dropped: wrong
    bbox_wh = np.array([a["bbox"][2:] for a in scored], dtype=np.float64)
    for thr in (0.2, 0.05):
        ours = score_coco_results(results_path, mmpose_data / rel, sigmas=sigmas, threshold=thr)
        assert ours.pck == pytest.approx(_mmpose_pck(pred, truth, mask, bbox_wh, thr), abs=1e-9)
    kept = np.array([xy is not None for xy in expected])
    epe = np.linalg.norm(pred - truth, axis=-1)[mask & kept[:, None]].mean()
    assert scores.epe == pytest.approx(epe, abs=1e-9)
    assert (scores.matched, scores.unmatched_annotations, scores.unmatched_results) == (len(scored) - 2, 2, 1)


@pytest.mark.anchor
def test_results_as_a_list_and_shuffling_do_not_change_the_scores(mmpose_data, tmp_path):
    rel, _ = DATASETS["coco"]
    gt = _load(mmpose_data / rel)
    rows, _ = _perturbed(gt, with_id=False, seed=3)
    from_file = score_coco_results(_write(tmp_path / "r.json", rows), mmpose_data / rel).as_dict()
    assert score_coco_results(list(reversed(rows)), mmpose_data / rel).as_dict() == from_file


@pytest.mark.anchor
def test_known_shift_gives_exact_epe_and_hand_counted_pck(mmpose_data):
    gt_path = mmpose_data / DATASETS["coco"][0]
    gt = _load(gt_path)
    rows = [_row(a, _kp(a)[:, :2] + [12.0, 16.0], 1.0, with_id=False) for a in _scored(gt)]  # 20 px everywhere
    scores = score_coco_results(rows, gt_path)
    assert scores.epe == pytest.approx(20.0, abs=1e-9)
    # 20 / max(w, h) < 0.2 for every person but annotation 1724673 (bbox 30.41 x 96.08: 0.208), which labels all 17
    # keypoints; the other 11 scored people label keypoint j this many times (+1 for 1724673):
    labelled = [11, 10, 9, 6, 10, 12, 12, 11, 11, 11, 9, 12, 12, 12, 12, 11, 10]
    assert list(scores.labelled) == labelled
    per_kp = [100.0 * (n - 1) / n for n in labelled]
    assert [v for _, v in scores.per_keypoint] == pytest.approx(per_kp)
    assert scores.pck == pytest.approx(sum(per_kp) / 17)
    assert dict(scores.per_keypoint)["left_ear"] == pytest.approx(100 * 5 / 6)


@pytest.mark.anchor
def test_matching_prefers_oks_then_score_and_honours_annotation_ids(mmpose_data):
    gt_path = mmpose_data / DATASETS["coco"][0]
    gt = _load(gt_path)
    person = next(a for a in gt["annotations"] if a["id"] == 442619)  # the only person of image 785
    exact, off = _kp(person)[:, :2], _kp(person)[:, :2] + [30.0, 40.0]  # 50 px off
    by_oks = score_coco_results([_row(person, off, 0.9, False), _row(person, exact, 0.1, False)], gt_path)
    assert by_oks.epe == 0.0 and by_oks.unmatched_results == 1  # the closer result wins despite its lower score
    tie = score_coco_results([_row(person, off, 0.2, False), _row(person, off, 0.9, False)], gt_path)
    assert tie.matched == 1 and tie.unmatched_results == 1
    named = score_coco_results([_row(person, exact, 0.1, True), _row(person, off, 0.9, True)], gt_path)
    assert named.epe == pytest.approx(50.0)  # both name the annotation: the higher score wins, not the closer
    unlabelled = next(a for a in gt["annotations"] if a["id"] == 1202706)  # image 40083, no labelled keypoint
    rows = [_row(unlabelled, exact, 1.0, True), _row(person, exact, 1.0, True)]
    only_one = score_coco_results(rows, gt_path)
    assert (only_one.matched, only_one.unmatched_results, only_one.unmatched_annotations) == (1, 1, 11)


@pytest.mark.anchor
def test_without_sigmas_ap_is_not_computed_but_pck_is(mmpose_data):
    gt_path = mmpose_data / DATASETS["crowdpose"][0]
    rows = [_row(a, _kp(a)[:, :2], 0.5, with_id=False) for a in _scored(_load(gt_path))]
    scores = score_coco_results(rows, gt_path)
    assert scores.stats == dict.fromkeys(STAT_NAMES) and scores.sigmas_source is None
    assert "no OKS sigmas for the 14 keypoints" in scores.ap_note
    assert scores.pck == 100.0 and scores.epe == 0.0
    assert scores.filled["area"] == 5  # CrowdPose has no 'area': filled from the bbox for pycocotools


# ---------------------------------------------------------------- writing results


@pytest.mark.anchor
def test_result_rows_round_trip_through_the_writer(mmpose_data, tmp_path):
    gt_path = mmpose_data / DATASETS["onehand10k"][0]
    scored = _scored(_load(gt_path))
    xy = np.stack([_kp(a)[:, :2] for a in scored])
    conf = np.tile(np.linspace(0.2, 1.0, 21), (len(scored), 1))
    rows = coco_result_rows([a["image_id"] for a in scored], 1, xy, conf, [a["id"] for a in scored])
    assert rows[0]["score"] == pytest.approx(0.6) and rows[0]["keypoints"][2] == pytest.approx(0.2)
    assert len(rows[0]["keypoints"]) == 63 and rows[0]["annotation_id"] == scored[0]["id"]
    path = tmp_path / "out" / "results.json"
    write_coco_results(path, rows)
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary left behind
    assert json.loads(path.read_text()) == rows
    scores = score_coco_results(path, gt_path, sigmas=[0.025] * 21)
    assert scores.ap == pytest.approx(1.0) and scores.pck == 100.0 and scores.matched == len(scored)
    with pytest.raises(ValueError, match="finite"):
        coco_result_rows([1], 1, np.full((1, 21, 2), np.nan), np.ones((1, 21)))
    write_coco_results(tmp_path / "empty.json", [])
    assert json.loads((tmp_path / "empty.json").read_text()) == []


# ---------------------------------------------------------------- the command line


def _json_out(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # pycocotools' own prints are silenced
    return json.loads(out[0])


@pytest.mark.anchor
def test_cli_json_keys_threshold_and_sigmas(mmpose_data, tmp_path, capsys):
    rel, sigmas = DATASETS["crowdpose"]
    gt_path = mmpose_data / rel
    results = _write(tmp_path / "results.txt", _perturbed(_load(gt_path), with_id=True)[0])  # content, not name
    assert main([str(results), "--gt", str(gt_path), "--json"]) == 0
    out = _json_out(capsys)
    for key in [*STAT_NAMES, "PCK@0.2", "EPE", "per_keypoint", "matched", "unmatched_annotations",
                "unmatched_results", "sigmas_source"]:
        assert key in out, key
    assert out["AP"] is None and out["sigmas_source"] is None and "sigmas" in out["AP_note"]
    assert list(out["per_keypoint"])[-2:] == ["head", "neck"]
    assert main([str(results), "--gt", str(gt_path), "--json", "--sigmas", ",".join(map(str, sigmas))]) == 0
    listed = _json_out(capsys)
    yaml_file = tmp_path / "sigmas.yaml"
    yaml_file.write_text("sigmas: [" + ", ".join(map(str, sigmas)) + "]\n")
    assert main([str(results), "--gt", str(gt_path), "--json", "--sigmas", str(yaml_file),
                 "--threshold", "0.1"]) == 0
    from_yaml = _json_out(capsys)
    expected = score_coco_results(results, gt_path, sigmas=sigmas).as_dict()
    assert listed == json.loads(json.dumps(expected)) and listed["sigmas_source"] == "given"
    assert "PCK@0.1" in from_yaml and "PCK@0.2" not in from_yaml and from_yaml["AP"] == listed["AP"]


@pytest.mark.anchor
def test_cli_table(mmpose_data, tmp_path, capsys):
    gt_path = mmpose_data / DATASETS["coco"][0]
    results = _write(tmp_path / "results.json", _perturbed(_load(gt_path), with_id=False)[0])
    assert main([str(results), "--gt", str(gt_path)]) == 0
    text = capsys.readouterr().out
    assert "OKS sigmas: COCO's published 17" in text and "AP50" in text and "ARl" in text
    assert "PCK@0.2:" in text and "right_ankle" in text and "EPE:" in text
    assert "unmatched annotations: 2, unmatched results: 1" in text


@pytest.mark.anchor
def test_cli_subprocess_prints_one_json_object(mmpose_data, tmp_path):
    gt_path = mmpose_data / DATASETS["coco"][0]
    results = _write(tmp_path / "results.json", [_row(a, _kp(a)[:, :2], 1.0, False) for a in _scored(_load(gt_path))])
    proc = subprocess.run([sys.executable, "-m", "hourglass.evaluation", str(results), "--gt", str(gt_path), "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["AP"] == pytest.approx(1.0) and out["PCK@0.2"] == 100.0 and out["sigmas_source"] == "coco"


def _bad(rows_edit=None, gt_edit=None):
    def apply(gt: dict, rows: list[dict]):
        if rows_edit:
            rows_edit(rows)
        if gt_edit:
            gt_edit(gt)
    return apply


BAD_INPUT = {
    "missing keypoints": (_bad(rows_edit=lambda rows: rows[0].pop("keypoints")), "result 0: missing 'keypoints'"),
    "wrong length": (_bad(rows_edit=lambda rows: rows[1].update(keypoints=rows[1]["keypoints"][:-3])),
                     "result 1: 'keypoints' has 48 values; category 'person'"),
    "unknown image": (_bad(rows_edit=lambda rows: rows[0].update(image_id=424242)),
                      "result 0: image_id 424242 is not an image of"),
    "unknown annotation": (_bad(rows_edit=lambda rows: rows[2].update(annotation_id=999999999)),
                           "result 2: annotation_id 999999999 is not a 'person' annotation"),
    "no keypoint category": (_bad(gt_edit=lambda gt: gt["categories"][0].pop("keypoints")),
                             "no category has 'keypoints'"),
    "gt keypoint count": (_bad(gt_edit=lambda gt: gt["annotations"][3].update(keypoints=[0, 0, 0] * 14)),
                          "annotation 1202706: 'keypoints' has 42 values; category 'person' has 17 keypoints"),
}


@pytest.mark.anchor
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_cli_bad_input_exits_1_with_one_error_line(mmpose_data, tmp_path, capsys, case):
    edit, message = BAD_INPUT[case]
    gt = _load(mmpose_data / DATASETS["coco"][0])
    rows = [_row(a, _kp(a)[:, :2], 1.0, False) for a in _scored(gt)]
    edit(gt, rows)
    gt_path, results = _write(tmp_path / "gt.json", gt), _write(tmp_path / "results.json", rows)
    assert main([str(results), "--gt", str(gt_path), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert ("results.json" in err[0]) or ("gt.json" in err[0])


@pytest.mark.anchor
def test_cli_other_errors(mmpose_data, tmp_path, capsys):
    gt_path = mmpose_data / DATASETS["onehand10k"][0]
    results = _write(tmp_path / "results.json", [_row(a, _kp(a)[:, :2], 1.0, False) for a in _scored(_load(gt_path))])
    assert main([str(results), "--gt", str(gt_path), "--sigmas", "0.1,0.2,0.3"]) == 1  # 3 sigmas for 21 keypoints
    assert "3 sigmas given, but category 'hand'" in capsys.readouterr().err
    assert main([str(results), "--gt", str(gt_path), "--sigmas", "0.1,abc"]) == 2  # not a list of numbers: usage
    assert "expected comma-separated numbers" in capsys.readouterr().err
    bad_yaml = tmp_path / "s.yaml"
    bad_yaml.write_text("other: [1]\n")
    assert main([str(results), "--gt", str(gt_path), "--sigmas", str(bad_yaml)]) == 1
    assert "s.yaml: expected a list of numbers under key 'sigmas'" in capsys.readouterr().err
    _write(tmp_path / "dict.json", {"annotations": []})
    assert main([str(tmp_path / "dict.json"), "--gt", str(gt_path)]) == 1
    assert "dict.json: a COCO results file is a JSON list" in capsys.readouterr().err
    h5 = tmp_path / "preds.h5"
    write_predictions(h5, np.zeros((2, 16, 2)))
    assert main([str(h5), "--gt", str(gt_path)]) == 1
    assert "preds.h5: not JSON; scoring COCO results needs a COCO keypoint results list" in capsys.readouterr().err
    assert main([str(tmp_path / "a.h5"), "--gt", str(tmp_path / "b.h5"), "--sigmas", "0.1"]) == 2
    assert "--sigmas applies to COCO keypoint results (JSON) only" in capsys.readouterr().err


# ---------------------------------------------------------------- Tompson's layout in plain h5


@pytest.mark.anchor
def test_plain_h5_in_tompsons_layout_reads_like_his_mat(anchor_dir, tmp_path, capsys):
    authors = anchor_dir / "pose-hg-demo/preds/valid-ours.h5"
    gt = anchor_dir / "pose-hg-train/data/mpii/annot/valid.h5"
    with h5py.File(authors, "r") as h5:
        preds = h5["preds"][()]  # (2958, 16, 2), no layout attribute
    tompson = tmp_path / "tompson.h5"
    with h5py.File(tompson, "w") as h5:
        h5["preds"] = preds.transpose(2, 1, 0)  # (2, 16, 2958): x/y, joint, person
    assert np.array_equal(read_predictions(tompson), preds - 1.0)
    assert main([str(authors), "--gt", str(gt), "--json"]) == 0
    reference = json.loads(capsys.readouterr().out)
    assert main([str(tompson), "--gt", str(gt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == reference


def test_plain_h5_layout_rule_fits_one_or_fails(tmp_path):
    rng = np.random.default_rng(0)
    two = rng.uniform(1, 100, (2, 16, 2))
    unmarked = tmp_path / "unmarked.h5"
    with h5py.File(unmarked, "w") as h5:
        h5["preds"] = two
    with pytest.raises(ReaderError, match=r"unmarked.h5: 'preds' shape \(2, 16, 2\) is ambiguous"):
        read_predictions(unmarked)
    with pytest.raises(ReaderError, match="ambiguous"):
        read_predictions(unmarked, joints=16, people=2)
    neither = tmp_path / "neither.h5"
    with h5py.File(neither, "w") as h5:
        h5["preds"] = rng.uniform(1, 100, (3, 16, 3))
    with pytest.raises(ReaderError, match="fits neither accepted layout"):
        read_predictions(neither)
    marked = tmp_path / "marked.h5"
    write_predictions(marked, two - 1.0)  # our writer names its layout: a two-person file is not ambiguous
    assert np.allclose(read_predictions(marked), two - 1.0)
    with h5py.File(marked, "r+") as h5:
        h5["preds"].attrs["layout"] = "[2 x J x n]"
    assert np.allclose(read_predictions(marked), two.transpose(2, 1, 0) - 1.0)
    with h5py.File(marked, "r+") as h5:
        h5["preds"].attrs["layout"] = "rows"
    with pytest.raises(ReaderError, match="attribute 'layout' is 'rows'"):
        read_predictions(marked)
