"""``python -m hourglass.evaluation``: golden numbers through the CLI, both output modes, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from hourglass.cli.score import main
from hourglass.io.eval_files import ReaderError, read_ground_truth, read_predictions, write_predictions

REPO = Path(__file__).resolve().parents[1]
MPII_KEYS = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean_unweighted", "Mean@0.1"]
GOLDEN = dict(zip(MPII_KEYS, [95.94, 94.68, 88.53, 83.38, 87.48, 83.09, 79.05, 88.04, 87.56, 28.65], strict=True))


@pytest.fixture(scope="module")
def files(anchor_dir):
    return {
        "preds": anchor_dir / "pose-hg-demo/preds/valid-ours.h5",
        "mat": anchor_dir / "pytorch-pose/evaluation/data/detections_our_format.mat",
        "mpii_h5": anchor_dir / "pose-hg-train/data/mpii/annot/valid.h5",
        "flic_h5": anchor_dir / "pose-hg-train/data/flic/annot/valid.h5",
    }


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_json_output_matches_golden_numbers(files, capsys):
    assert main([str(files["preds"]), "--gt", str(files["mat"]), "--json"]) == 0
    out = _json_out(capsys)
    assert list(out) == MPII_KEYS
    for key, value in GOLDEN.items():
        assert abs(out[key] - value) < 0.005, (key, out[key])


def test_table_output_is_readable(files, capsys):
    assert main([str(files["preds"]), "--gt", str(files["mat"])]) == 0
    text = capsys.readouterr().out
    assert "<= 0.5" in text and "0.6 x head-box diagonal" in text
    assert "Mean (joint-count weighted)               88.04 %" in text
    assert "Mean (unweighted over joints)             87.56 %" in text
    assert "PCKh@0.1 (weighted mean)                  28.65 %" in text
    assert "pelvis            2878    92.08  (excluded from means)" in text
    assert "Head                      95.94" in text


def test_threshold_option_changes_the_scores(files, capsys):
    assert main([str(files["preds"]), "--gt", str(files["mpii_h5"]), "--threshold", "0.1", "--json"]) == 0
    out = _json_out(capsys)
    assert out["Mean"] == pytest.approx(out["Mean@0.1"])  # PCKh@0.1 is the same number as Mean@0.1
    assert abs(out["Mean"] - 28.70) < 0.005


def test_flic_ground_truth_through_the_cli(files, tmp_path, capsys):
    gt = read_ground_truth(files["flic_h5"])
    preds = gt.joints.copy()
    preds[:508, 2] += (0.25 * gt.normalize[:508])[:, None] * np.array([1.0, 0.0])  # half the left wrists: wrong
    pred_path = tmp_path / "flic_preds.h5"
    write_predictions(pred_path, preds)
    assert main([str(pred_path), "--gt", str(files["flic_h5"]), "--json"]) == 0
    out = _json_out(capsys)
    assert list(out) == ["Shoulder", "Elbow", "Wrist", "Hip", "Eye", "Nose", "Mean"]
    assert out["Wrist"] == pytest.approx(75.0) and out["Elbow"] == 100.0
    assert main([str(pred_path), "--gt", str(files["flic_h5"])]) == 0
    assert "torso size ||rsho - lhip||) <= 0.2" in capsys.readouterr().out


def test_subprocess_json(files):
    proc = subprocess.run(
        [sys.executable, "-m", "hourglass.evaluation", str(files["preds"]), "--gt", str(files["mat"]), "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert abs(out["Mean"] - 88.04) < 0.005 and abs(out["Mean_unweighted"] - 87.56) < 0.005


def test_missing_prediction_file(files, tmp_path, capsys):
    missing = tmp_path / "nothing.h5"
    assert main([str(missing), "--gt", str(files["mat"])]) == 2
    err = capsys.readouterr().err
    assert "nothing.h5: prediction file not found" in err


def test_missing_ground_truth_file(files, tmp_path, capsys):
    assert main([str(files["preds"]), "--gt", str(tmp_path / "gt.mat")]) == 2
    assert "gt.mat: ground-truth file not found" in capsys.readouterr().err


def test_missing_preds_dataset(files, tmp_path, capsys):
    path = tmp_path / "wrong_key.h5"
    with h5py.File(path, "w") as h5:
        h5["predictions"] = np.zeros((2958, 16, 2))
    assert main([str(path), "--gt", str(files["mat"]), "--json"]) == 2
    captured = capsys.readouterr()
    assert "wrong_key.h5: missing dataset 'preds'" in captured.err and captured.out == ""


def test_row_count_mismatch(files, tmp_path, capsys):
    path = tmp_path / "short.h5"
    write_predictions(path, np.zeros((100, 16, 2)))
    assert main([str(path), "--gt", str(files["mat"])]) == 2
    err = capsys.readouterr().err
    assert "short.h5: 'preds' has shape (100, 16, 2)" in err and "(2958, 16, 2)" in err


def test_bad_threshold_and_missing_gt_option(files, capsys):
    assert main([str(files["preds"]), "--gt", str(files["mat"]), "--threshold", "-1"]) == 2
    assert "--threshold must be a non-negative number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(files["preds"])])
    assert exc.value.code == 2
    assert "--gt" in capsys.readouterr().err


def _write_mat73(path: Path, matlab_array: np.ndarray) -> None:
    """A MATLAB v7.3 .mat as MATLAB writes it: HDF5 behind a 512-byte userblock, dimensions reversed for h5py."""
    with h5py.File(path, "w", userblock_size=512) as h5:
        h5["preds"] = matlab_array.T
    with path.open("r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file".ljust(128, b" "))


@pytest.fixture(scope="module")
def authors_preds(files) -> np.ndarray:
    with h5py.File(files["preds"], "r") as h5:
        preds = h5["preds"][()]
    assert preds.shape == (2958, 16, 2)
    return preds


@pytest.mark.parametrize("kind", ["mat5_nJ2", "mat5_2Jn", "mat73_nJ2", "mat73_2Jn"])
def test_other_projects_prediction_files_score_like_the_h5(files, authors_preds, kind, tmp_path, capsys):
    assert main([str(files["preds"]), "--gt", str(files["mpii_h5"]), "--json"]) == 0
    reference = _json_out(capsys)
    assert abs(reference["Mean"] - 88.04) < 0.005
    layout = authors_preds if kind.endswith("nJ2") else authors_preds.transpose(2, 1, 0)  # (2, 16, n): Tompson's
    path = tmp_path / f"{kind}.mat"
    if kind.startswith("mat5"):
        scipy.io.savemat(path, {"preds": layout})
    else:
        _write_mat73(path, layout)
    assert np.array_equal(read_predictions(path), read_predictions(files["preds"]))
    assert main([str(path), "--gt", str(files["mpii_h5"]), "--json"]) == 0
    assert _json_out(capsys) == reference
    assert main([str(path), "--gt", str(files["mat"]), "--json"]) == 0
    assert abs(_json_out(capsys)["Mean"] - 88.04) < 0.005


def test_ambiguous_prediction_shape(authors_preds, tmp_path):
    path = tmp_path / "two_people.mat"
    scipy.io.savemat(path, {"preds": authors_preds[:2]})  # (2, 16, 2): [n x J x 2] and [2 x J x n] both fit
    with pytest.raises(ReaderError, match=r"two_people.mat: 'preds' shape \(2, 16, 2\) is ambiguous") as err:
        read_predictions(path, joints=16)
    assert "[n x J x 2]" in str(err.value) and "[2 x J x n]" in str(err.value)
    with pytest.raises(ReaderError, match="ambiguous"):
        read_predictions(path, joints=16, people=2)  # both layouts have 2 people: still ambiguous
    three = tmp_path / "three_people.mat"
    scipy.io.savemat(three, {"preds": authors_preds[:3].transpose(2, 1, 0)})  # (2, 16, 3): only [2 x J x n]
    assert np.array_equal(read_predictions(three, joints=16, people=3), authors_preds[:3] - 1.0)


def test_wrong_prediction_shape_through_the_cli(files, tmp_path, capsys):
    path = tmp_path / "wrong.mat"
    scipy.io.savemat(path, {"preds": np.zeros((2958, 14, 2))})
    assert main([str(path), "--gt", str(files["mat"])]) == 2
    err = capsys.readouterr().err
    assert "wrong.mat: 'preds'" in err and "(2958, 14, 2)" in err
    assert "fits neither accepted layout" in err and "[2 x J x n]" in err and "expected 16 joints" in err


def test_mat_without_preds_lists_its_variables(files, tmp_path, capsys):
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"pos_pred_src": np.zeros((16, 2, 3)), "scores": np.zeros(3)})
    assert main([str(path), "--gt", str(files["mat"])]) == 2
    assert "other.mat: missing variable 'preds'; found ['pos_pred_src', 'scores']" in capsys.readouterr().err
    v73 = tmp_path / "other73.mat"
    _write_mat73(v73, np.zeros((3, 16, 2)))
    with h5py.File(v73, "r+") as h5:
        h5.move("preds", "predictions")
    with pytest.raises(ReaderError, match=r"other73.mat: missing variable 'preds'; found \['predictions'\]"):
        read_predictions(v73)
