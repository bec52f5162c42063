"""The MPII test-set submission file: layout, round trip, and the person-order guard."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hourglass.io.mpii_submission import (
    MIN_PEOPLE,
    SubmissionError,
    build_submission,
    check_order,
    read_release,
    read_submission,
    write_submission,
)

sys.path.insert(0, str(Path(__file__).parent))
from mpii_release import write_release  # noqa: E402


@pytest.fixture
def release(tmp_path):
    """Six images: 0 and 3 training images; the four test images hold 2, 1, 3 and 1 people."""
    rng = np.random.default_rng(0)
    counts = [1, 2, 1, 2, 3, 1]
    people = [[{"objpos": tuple(rng.uniform(50, 1200, 2)), "scale": 2.0} for _ in range(c)] for c in counts]
    path = write_release(tmp_path / "release.mat", [f"{i:09d}.jpg" for i in range(6)], [1, 0, 0, 1, 0, 0], people)
    return read_release(path), people


def test_release_is_read_in_its_struct_layout(release):
    rel, people = release
    assert rel.test_images.tolist() == [1, 2, 4, 5]
    assert rel.objpos(4, 2) == pytest.approx(people[4][2]["objpos"])
    with pytest.raises(SubmissionError, match=r"annolist\(5\)\.annorect\(4\)"):
        rel.objpos(4, 3)


def test_submission_round_trips_and_keeps_every_test_image_in_release_order(release, tmp_path):
    rel, _ = release
    index = np.array([4, 1, 2, 4, 5, 4])  # test rows in any order; image 1's person 1 has no row
    person = np.array([1, 0, 0, 0, 0, 2])
    preds = np.random.default_rng(1).uniform(0, 700, (len(index), 16, 2))
    preds[2, 5] = np.nan  # a joint without a prediction is left out of the points
    path = tmp_path / "pred_keypoints_mpii.mat"
    write_submission(path, build_submission(rel, index, person, preds))

    raw = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)["pred"]
    assert [e.image.name for e in raw] == ["000000001.jpg", "000000002.jpg", "000000004.jpg", "000000005.jpg"]
    first = raw[0].annorect[0].annopoints.point
    assert [int(p.id) for p in first] == list(range(16))
    assert float(first[3].x) == pytest.approx(preds[1, 3, 0] + 1.0)  # 1-based pixels, as the annotations

    back = read_submission(path)
    assert len(back) == len(index)
    for row, (i, p) in enumerate(zip(index, person, strict=True)):
        np.testing.assert_allclose(back[(f"{i:09d}.jpg", int(p))], preds[row])
    assert ("000000001.jpg", 1) not in back


def test_rows_that_are_not_test_people_are_refused(release):
    rel, _ = release
    with pytest.raises(SubmissionError, match=r"annolist\(4\) is not a test image"):
        build_submission(rel, np.array([3]), np.array([0]), np.zeros((1, 16, 2)))
    with pytest.raises(SubmissionError, match="appears twice"):
        build_submission(rel, np.array([1, 1]), np.array([0, 0]), np.zeros((2, 16, 2)))
    with pytest.raises(SubmissionError, match="has 1 people"):
        build_submission(rel, np.array([2]), np.array([1]), np.zeros((1, 16, 2)))


def test_order_guard_passes_crude_predictions_and_stops_shuffled_rows():
    rng = np.random.default_rng(2)
    n = 400
    objpos = np.stack([rng.uniform(100, 1180, n), rng.uniform(150, 600, n)], axis=1)
    crop = rng.uniform(250, 600, n)[:, None]  # crop side in px
    # An untrained-looking network: the thorax anywhere within the person's crop.
    crude = objpos + rng.uniform(-0.5, 0.5, (n, 2)) * crop
    r = check_order(objpos, crude)
    assert r is not None and min(r.values()) >= 0.5
    with pytest.raises(SubmissionError, match="not in the order"):
        check_order(objpos, crude[rng.permutation(n)])
    assert check_order(objpos[:MIN_PEOPLE - 1], crude[:MIN_PEOPLE - 1]) is None  # too few to tell
