"""COCO keypoints files read into a people table: the real COCO, CrowdPose and OneHand10K files of
``shared/anchor-data/mmpose/tests/data`` (numbers checked against the JSON itself), AP-10K-style files with several
categories sharing one keypoint list, the tolerated omissions of annotation tools, the errors, and the hash split."""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hourglass.flip_pairs import check_flip_pairs, infer_flip_pairs
from hourglass.inference.people import Person
from hourglass.io.coco import CocoError, CocoPeople, CocoWarning, crop_of_box, read_coco, split_of, split_people

COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle")
COCO_NO_KEYPOINTS = (1202706, 508900)  # the two annotations of test_coco.json with num_keypoints 0


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def check_against_json(people: CocoPeople, data: dict[str, Any]) -> None:
    """Every row holds exactly the JSON's numbers: coordinates, v flags, box, area (or w*h), ids, file name."""
    anns = {a["id"]: a for a in data["annotations"]}
    files = {i["id"]: i["file_name"] for i in data["images"]}
    k = len(people.keypoint_names)
    assert people.joints.shape == (len(people), k, 2) and people.joints.dtype == np.float64
    for row, ann_id in enumerate(people.annotation_id):
        ann = anns[int(ann_id)]
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(k, 3)
        v = kp[:, 2]
        np.testing.assert_array_equal(people.annotated[row], v > 0)
        np.testing.assert_array_equal(people.visible[row], v == 2)
        np.testing.assert_array_equal(people.joints[row][v > 0], kp[v > 0, :2])
        assert np.isnan(people.joints[row][v == 0]).all()
        np.testing.assert_array_equal(people.bbox[row], ann["bbox"])
        assert people.area[row] == ann.get("area", ann["bbox"][2] * ann["bbox"][3])
        assert people.image_id[row] == ann["image_id"]
        assert people.category_id[row] == ann["category_id"]
        assert people.file_name[row] == files[ann["image_id"]]


# ------------------------------------------------------------------------------------------------- the real files
@pytest.fixture
def coco_path(anchor_dir: Path) -> Path:
    return anchor_dir / "mmpose/tests/data/coco/test_coco.json"


@pytest.fixture
def coco_data(coco_path: Path) -> dict[str, Any]:
    return json.loads(coco_path.read_text())


@pytest.mark.anchor
def test_coco_file(coco_path: Path, coco_data: dict[str, Any]) -> None:
    people = read_coco(coco_path)
    assert len(people) == 12 and len(coco_data["annotations"]) == 14
    assert dict(people.skipped) == {"crowd": 0, "no_keypoints": 2, "bad_bbox": 0, "box_from_keypoints": 0,
                                    "other_category": 0}
    assert not set(COCO_NO_KEYPOINTS) & set(people.annotation_id.tolist())
    assert people.source == coco_path
    assert people.keypoint_names == COCO_NAMES
    assert len(people.skeleton) == 19
    assert people.skeleton[:3] == (("left_ankle", "left_knee"), ("left_knee", "left_hip"),
                                   ("right_ankle", "right_knee"))
    assert people.skeleton[-1] == ("right_ear", "right_shoulder")
    assert dict(people.images) == {785: ("000000000785.jpg", 640, 425), 40083: ("000000040083.jpg", 500, 333),
                                   196141: ("000000196141.jpg", 640, 429), 197388: ("000000197388.jpg", 640, 392)}
    assert people.annotated.sum(axis=1).tolist() == [17, 14, 15, 15, 15, 12, 17, 16, 16, 15, 16, 13]
    assert people.visible.sum() == 164 and (people.annotated & ~people.visible).sum() == 17  # v = 2 and v = 1
    for name in set(people.file_name.tolist()):
        assert (coco_path.parent / name).is_file()  # the real images are beside the file
    check_against_json(people, coco_data)
    assert people.joints[0, 0].tolist() == [367, 81]  # the first person's nose, as written


@pytest.mark.anchor
def test_crowdpose_file(anchor_dir: Path) -> None:
    path = anchor_dir / "mmpose/tests/data/crowdpose/test_crowdpose.json"
    # CrowdPose ships COCO's 17-keypoint skeleton for its 14 keypoints: ignored with a warning, people still read
    with pytest.warns(CocoWarning, match=r"category 1 'skeleton' indexes past its 14 keypoints"):
        people = read_coco(path)
    assert len(people) == 4
    assert people.skipped["no_keypoints"] == 1 and people.skipped["crowd"] == 0
    assert people.keypoint_names[-2:] == ("head", "neck") and len(people.keypoint_names) == 14
    assert people.skeleton == ()
    assert people.annotated.sum(axis=1).tolist() == [7, 12, 14, 14]  # num_keypoints says 5, 10, 12, 12: v counts
    data = json.loads(path.read_text())
    assert all("area" not in a for a in data["annotations"])
    check_against_json(people, data)  # area = w * h
    assert infer_flip_pairs(people.keypoint_names) == (
        ("left_shoulder", "right_shoulder"), ("left_elbow", "right_elbow"), ("left_wrist", "right_wrist"),
        ("left_hip", "right_hip"), ("left_knee", "right_knee"), ("left_ankle", "right_ankle"))


@pytest.mark.anchor
def test_onehand10k_file(anchor_dir: Path) -> None:
    path = anchor_dir / "mmpose/tests/data/onehand10k/test_onehand10k.json"
    data = json.loads(path.read_text())
    assert all("num_keypoints" not in a for a in data["annotations"])
    people = read_coco(path)
    assert len(people) == 4 and sum(people.skipped.values()) == 0
    assert len(people.keypoint_names) == 21 and people.keypoint_names[:2] == ("wrist", "thumb1")
    assert len(people.skeleton) == 20 and people.skeleton[0] == ("wrist", "thumb1")
    assert people.skeleton[-1] == ("pinky_finger3", "pinky_finger4")
    assert people.annotated.sum(axis=1).tolist() == [20, 7, 15, 21]
    assert not people.visible.any()  # OneHand10K flags are 0/1 only
    check_against_json(people, data)
    assert infer_flip_pairs(people.keypoint_names) == ()
    assert check_flip_pairs(people.keypoint_names, ()) == tuple(range(21))


@pytest.mark.anchor
def test_coco_flip_pairs(coco_path: Path) -> None:
    names = read_coco(coco_path).keypoint_names
    pairs = infer_flip_pairs(names)
    assert pairs == tuple((f"left_{p}", f"right_{p}") for p in
                          ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"))
    assert check_flip_pairs(names, pairs) == (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


@pytest.mark.anchor
def test_crop_of_box_is_the_prediction_rule(coco_path: Path) -> None:
    people = read_coco(coco_path)
    center, scale = crop_of_box(people.bbox)
    assert center.shape == (12, 2) and scale.shape == (12,)
    for row, (x, y, w, h) in enumerate(people.bbox):
        _, width, height = people.images[int(people.image_id[row])]
        person = Person.from_box((x, y, x + w, y + h), width, height)
        np.testing.assert_allclose(center[row], person.center, rtol=0, atol=1e-9)
        assert scale[row] == pytest.approx(person.scale, rel=1e-12)
    # the first person: box 280.79, 44.73, 218.7 x 346.68 -> centre of the box, 1.25 x the longer side / 200 px
    np.testing.assert_allclose(center[0], (280.79 + 218.7 / 2, 44.73 + 346.68 / 2))
    assert scale[0] == pytest.approx(1.25 * 346.68 / 200)
    empty_center, empty_scale = crop_of_box(np.zeros((0, 4)))
    assert empty_center.shape == (0, 2) and empty_scale.shape == (0,)


# ------------------------------------------------------------------------------------------------- tolerated variants
@pytest.mark.anchor
def test_crowd_annotations_are_skipped_and_counted(tmp_path: Path, coco_data: dict[str, Any]) -> None:
    data = copy.deepcopy(coco_data)
    data["annotations"][0]["iscrowd"] = 1
    data["annotations"][1]["iscrowd"] = 1
    people = read_coco(write_json(tmp_path / "crowd.json", data))
    assert len(people) == 10
    assert people.skipped["crowd"] == 2 and people.skipped["no_keypoints"] == 2
    assert not {442619, 198196} & set(people.annotation_id.tolist())


@pytest.mark.anchor
def test_optional_keys_may_be_missing(tmp_path: Path, coco_data: dict[str, Any]) -> None:
    data = copy.deepcopy(coco_data)
    for ann in data["annotations"]:
        for key in ("num_keypoints", "iscrowd", "area", "segmentation"):
            ann.pop(key)
    del data["info"], data["licenses"]
    people = read_coco(write_json(tmp_path / "bare.json", data))
    assert len(people) == 12 and people.skipped["no_keypoints"] == 2
    np.testing.assert_allclose(people.area, people.bbox[:, 2] * people.bbox[:, 3])
    check_against_json(people, data)


@pytest.mark.anchor
def test_empty_box_is_derived_from_keypoints(tmp_path: Path, coco_data: dict[str, Any]) -> None:
    data = copy.deepcopy(coco_data)
    first = data["annotations"][0]  # 17 labelled keypoints
    first["bbox"] = [280.79, 44.73, 0, 346.68]
    second = data["annotations"][1]  # keep one labelled keypoint only
    kp = second["keypoints"]
    labelled = [j for j in range(17) if kp[3 * j + 2] > 0]
    for j in labelled[1:]:
        kp[3 * j:3 * j + 3] = [0, 0, 0]
    second["bbox"] = [38.08, 110.95, 174.71, -1]
    people = read_coco(write_json(tmp_path / "boxes.json", data))
    assert people.skipped["box_from_keypoints"] == 1 and people.skipped["bad_bbox"] == 1
    assert len(people) == 11 and 198196 not in people.annotation_id.tolist()
    xy = np.asarray(first["keypoints"], dtype=np.float64).reshape(17, 3)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    np.testing.assert_allclose(people.bbox[0], [lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
    assert people.area[0] == first["area"]


@pytest.mark.anchor
def test_categories_sharing_one_keypoint_list_are_one_dataset(tmp_path: Path, coco_data: dict[str, Any]) -> None:
    """AP-10K style: one category per species, all with the same keypoints; every annotation is read."""
    data = copy.deepcopy(coco_data)
    person = data["categories"][0]
    data["categories"].append({**person, "id": 7, "name": "twin", "skeleton": [[1, 2], [2, 1], [6, 7], [1, 6]]})
    data["categories"].append({"id": 9, "name": "car", "supercategory": "vehicle"})  # boxes only
    for ann in data["annotations"][::2]:
        ann["category_id"] = 7
    data["annotations"].append({"id": 1, "image_id": 785, "category_id": 9, "bbox": [1, 2, 3, 4]})
    path = write_json(tmp_path / "species.json", data)
    people = read_coco(path)
    assert len(people) == 12 and people.skipped["other_category"] == 1
    expected = {a["id"]: a["category_id"] for a in data["annotations"]}
    assert [expected[int(i)] for i in people.annotation_id] == people.category_id.tolist()
    assert set(people.category_id.tolist()) == {1, 7}
    # the union of the skeletons, each edge once: (nose, left_eye) is already COCO's [1, 2]; [1, 6] is new
    assert len(people.skeleton) == 20 and people.skeleton[-1] == ("nose", "left_shoulder")
    check_against_json(people, data)

    twins = read_coco(path, category_ids=[7])
    assert set(twins.category_id.tolist()) == {7}
    # category 7 has annotations 0, 2, ..., 12: one of them (508900) has no keypoints; the rest and the car are others
    assert len(twins) == 6 and twins.skipped["no_keypoints"] == 1 and twins.skipped["other_category"] == 8
    assert twins.skeleton == (("nose", "left_eye"), ("left_shoulder", "right_shoulder"), ("nose", "left_shoulder"))


@pytest.mark.anchor
def test_categories_with_different_lists(tmp_path: Path, coco_data: dict[str, Any]) -> None:
    data = copy.deepcopy(coco_data)
    data["categories"].append({"id": 5, "name": "face", "keypoints": ["chin", "nose_tip"], "skeleton": [[1, 2]]})
    data["annotations"].append({"id": 2, "image_id": 785, "category_id": 5, "bbox": [1, 2, 30, 40],
                                "keypoints": [10, 20, 2, 12, 25, 1]})
    path = write_json(tmp_path / "two_lists.json", data)
    with pytest.raises(CocoError, match=r"categories 1 and 5 have different keypoint lists.*category_ids") as err:
        read_coco(path)
    assert str(path) in str(err.value)
    faces = read_coco(path, category_ids=[5])
    assert faces.keypoint_names == ("chin", "nose_tip") and faces.skeleton == (("chin", "nose_tip"),)
    assert len(faces) == 1 and faces.skipped["other_category"] == 14
    assert faces.joints.tolist() == [[[10, 20], [12, 25]]] and faces.visible.tolist() == [[True, False]]
    assert len(read_coco(path, category_ids=[1])) == 12
    with pytest.raises(CocoError, match=r"category_ids asks for category 3, but 'categories' has only \[1, 5\]"):
        read_coco(path, category_ids=[3])


def test_minimal_tool_export(tmp_path: Path) -> None:
    """What a labelling tool may write: no num_keypoints/iscrowd/area, float ids, an image without people."""
    data = {
        "images": [{"id": 1, "file_name": "frames\\a.png", "width": 64, "height": 48},
                   {"id": 2.0, "file_name": "b.png", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "mouse", "keypoints": ["snout", "earL", "earR", "tail"]}],
        "annotations": [{"id": 10, "image_id": 1, "category_id": 1, "bbox": [4, 5, 20, 10],
                         "keypoints": [5, 6, 2, 7.5, 8.25, 1, 0, 0, 0, 20, 12, 2.0]}],
    }
    people = read_coco(write_json(tmp_path / "tool.json", data))
    assert len(people) == 1 and people.skeleton == ()
    assert dict(people.images) == {1: ("frames\\a.png", 64, 48), 2: ("b.png", 64, 48)}
    assert people.file_name.tolist() == ["frames\\a.png"]
    np.testing.assert_array_equal(people.joints[0], [[5, 6], [7.5, 8.25], [np.nan, np.nan], [20, 12]])
    assert people.annotated.tolist() == [[True, True, False, True]]
    assert people.visible.tolist() == [[True, False, False, True]]
    assert people.area.tolist() == [200.0] and people.bbox.tolist() == [[4, 5, 20, 10]]
    assert infer_flip_pairs(people.keypoint_names) == (("earL", "earR"),)


def test_file_without_people(tmp_path: Path) -> None:
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}], "annotations": [],
            "categories": [{"id": 1, "name": "person", "keypoints": ["a", "b"]}]}
    people = read_coco(write_json(tmp_path / "empty.json", data))
    assert len(people) == 0
    assert people.joints.shape == (0, 2, 2) and people.annotated.shape == (0, 2) and people.bbox.shape == (0, 4)
    assert len(people.images) == 1
    assert {k: len(v) for k, v in split_people(people, 0.5).items()} == {"train": 0, "valid": 0}


# ------------------------------------------------------------------------------------------------- errors
def small_file() -> dict[str, Any]:
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "categories": [{"id": 1, "name": "person", "keypoints": ["left_eye", "right_eye", "nose"],
                        "skeleton": [[1, 3], [2, 3]]}],
        "annotations": [{"id": 42, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 40], "iscrowd": 0,
                         "keypoints": [12, 15, 2, 30, 15, 2, 20, 25, 1], "num_keypoints": 3, "area": 900}],
    }


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_missing_top_level_key(tmp_path: Path, key: str) -> None:
    data = small_file()
    del data[key]
    path = write_json(tmp_path / "missing.json", data)
    with pytest.raises(CocoError, match=rf"missing top-level key\(s\) \['{key}'\]") as err:
        read_coco(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["annotations"][0]["keypoints"].pop(),
     r"annotation 42 'keypoints' must be a flat list of 3 x 3 = 9 numbers \(x, y, v per keypoint\), found 8"),
    (lambda d: d["annotations"][0].update(keypoints=[[12, 15, 2], [30, 15, 2], [20, 25, 1]]),
     r"annotation 42 'keypoints' must be a flat list of 3 x 3 = 9 numbers .* found 3"),
    (lambda d: d["annotations"][0].update(keypoints=[12, 15, 2, 30, "15", 2, 20, 25, 1]),
     r"annotation 42 'keypoints' holds '15', not a number"),
    (lambda d: d["annotations"][0].update(image_id=7),
     r"annotation 42 refers to image_id 7, which is not in 'images'"),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(5, 3),
     r"annotation 42 keypoint 1 has visibility v = 3; expected 0 \(not labelled\), 1 \(labelled, hidden\) or 2"),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(8, -1),
     r"annotation 42 keypoint 2 has visibility v = -1"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]),
     r"annotation 42 'bbox' must be four numbers x, y, w, h, got \[1, 2, 3\]"),
    (lambda d: d["categories"][0].pop("keypoints"),
     r"no category has 'keypoints' \(categories \[1\]\): not a keypoints file"),
    (lambda d: d["categories"][0].update(keypoints=["a", "b", "a"]),
     r"category 1 'keypoints' repeats \['a'\]"),
    (lambda d: d["images"].append(dict(d["images"][0])),
     r"image id 1 appears twice in 'images'"),
    (lambda d: d["images"][0].pop("width"),
     r"images\[0\] \(id 1\) has no 'width'"),
])
def test_bad_content(tmp_path: Path, edit: Any, message: str) -> None:
    data = small_file()
    edit(data)
    path = write_json(tmp_path / "bad.json", data)
    with pytest.raises(CocoError, match=message) as err:
        read_coco(path)
    assert str(path) in str(err.value)


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    text = json.dumps(small_file(), indent=1).splitlines()
    text[5] = text[5].rstrip(",") + " oops,"
    path = tmp_path / "broken.json"
    path.write_text("\n".join(text))
    with pytest.raises(CocoError, match=r"broken.json: malformed JSON at line 6, column \d+"):
        read_coco(path)
    with pytest.raises(CocoError, match=r"expected a JSON object"):
        read_coco(write_json(tmp_path / "list.json", [1, 2]))
    with pytest.raises(CocoError, match=r"nowhere.json: COCO keypoints file not found"):
        read_coco(tmp_path / "nowhere.json")


def test_skeleton_for_another_list_is_ignored_with_a_warning(tmp_path: Path) -> None:
    data = small_file()
    data["categories"][0]["skeleton"] = [[1, 3], [0, 2]]  # 0 is not a 1-based index
    with pytest.warns(CocoWarning, match=r"bad.json: category 1 'skeleton' indexes past its 3 keypoints"):
        people = read_coco(write_json(tmp_path / "bad.json", data))
    assert people.skeleton == () and len(people) == 1
    data["categories"][0]["skeleton"] = [[1, 3], [2]]
    with pytest.raises(CocoError, match=r"category 1 'skeleton' must be a list of \[i, j\] index pairs"):
        read_coco(write_json(tmp_path / "bad.json", data))


def test_skeleton_as_names_and_read_only_tables(tmp_path: Path) -> None:
    people = read_coco(write_json(tmp_path / "ok.json", small_file()))
    assert people.skeleton == (("left_eye", "nose"), ("right_eye", "nose"))
    with pytest.raises(TypeError):
        people.skipped["crowd"] = 3  # type: ignore[index]
    sub = people.subset(np.array([], dtype=int))
    assert len(sub) == 0 and sub.images == people.images and sub.keypoint_names == people.keypoint_names


# ------------------------------------------------------------------------------------------------- split
def test_split_of_is_pinned_to_sha256_of_the_name() -> None:
    """The hash decides; pinned values make a change of the rule (which would move every image) fail here."""
    assert split_of("000000000785.jpg", 0.098) == "valid"  # its position is 0.09702
    assert split_of("000000000785.jpg", 0.097) == "train"
    assert split_of("1402.jpg", 0.001) == "valid"  # 0.000249
    assert split_of("000000197388.jpg", 0.98) == "train"  # 0.98712
    assert split_of("dir\\sub\\a.jpg", 0.5) == split_of("dir/sub/a.jpg", 0.5)
    with pytest.raises(ValueError, match=r"valid_fraction 1.5"):
        split_of("a.jpg", 1.5)


def test_split_fraction_and_stability() -> None:
    rng = random.Random(0)
    names = [f"img/{rng.getrandbits(48):012x}_{i}.jpg" for i in range(10_000)]
    splits = {n: split_of(n, 0.2) for n in names}
    share = sum(s == "valid" for s in splits.values()) / len(names)
    assert abs(share - 0.2) < 0.02  # binomial sd 0.004
    more = names + [f"new/{i}.png" for i in range(5_000)]
    rng.shuffle(more)
    assert all(split_of(n, 0.2) == splits[n] for n in more if n in splits)  # adding names moves no old one
    assert {split_of(n, 0.0) for n in names} == {"train"} and {split_of(n, 1.0) for n in names} == {"valid"}


def test_split_people_keeps_images_whole_and_grows_stably() -> None:
    def table(n_images: int) -> CocoPeople:
        image_ids = np.repeat(np.arange(n_images), 3)  # three people per image
        n = len(image_ids)
        images = {i: (f"im{i:04d}.jpg", 10, 10) for i in range(n_images + 5)}  # five images without people
        return CocoPeople(
            source=Path("synthetic.json"), keypoint_names=("a",), skeleton=(),
            file_name=np.array([images[i][0] for i in image_ids]), image_id=image_ids.astype(np.int64),
            annotation_id=np.arange(n, dtype=np.int64), category_id=np.ones(n, dtype=np.int64),
            joints=np.zeros((n, 1, 2)), annotated=np.ones((n, 1), bool), visible=np.ones((n, 1), bool),
            bbox=np.ones((n, 4)), area=np.ones(n), images=images, skipped={})

    small, large = table(200), table(400)
    parts, grown = split_people(small, 0.25), split_people(large, 0.25)
    assert len(parts["train"]) + len(parts["valid"]) == len(small)
    assert not set(parts["train"].image_id.tolist()) & set(parts["valid"].image_id.tolist())
    assert 0.15 < len(parts["valid"]) / len(small) < 0.35
    assert set(parts["valid"].images) | set(parts["train"].images) == set(small.images)
    for split in ("train", "valid"):
        assert set(parts[split].file_name.tolist()) <= set(grown[split].file_name.tolist())
        assert all(split_of(name, 0.25) == split for name, _, _ in parts[split].images.values())
    empty = split_people(small, 0.0)
    assert len(empty["valid"]) == 0 and len(empty["train"]) == len(small) and not empty["valid"].images
    assert empty["valid"].joints.shape == (0, 1, 2) and empty["valid"].bbox.shape == (0, 4)


@pytest.mark.anchor
def test_split_people_on_coco(coco_path: Path) -> None:
    people = read_coco(coco_path)
    parts = split_people(people, 0.5)  # positions: 785 -> 0.097, 40083 -> 0.438, 196141 -> 0.664, 197388 -> 0.987
    assert sorted(parts["valid"].images) == [785, 40083] and sorted(parts["train"].images) == [196141, 197388]
    assert len(parts["valid"]) == 3 and len(parts["train"]) == 9
    assert parts["valid"].skipped == people.skipped
    assert math.isclose(parts["train"].area.sum() + parts["valid"].area.sum(), people.area.sum())
