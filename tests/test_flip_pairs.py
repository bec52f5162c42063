"""Left/right pairs inferred from keypoint names: the naming styles of COCO, CrowdPose, AP-10K, OpenPose, DeepLabCut
and labelling tools, names that only look like they have a side, and the permutation check. The project's own MPII
and FLIC joint sets are the cross-check: inferring their pairs must give their hand-written flip permutations."""

from __future__ import annotations

import pytest

from hourglass.flip_pairs import (
    SIDE_PLACEHOLDER,
    FlipPairError,
    check_flip_pairs,
    infer_flip_pairs,
    partner_of,
    side_of,
)
from hourglass.joints import FLIC, MPII

P = SIDE_PLACEHOLDER


@pytest.mark.parametrize(("left", "right", "template"), [
    ("left_eye", "right_eye", f"{P}_eye"),
    ("L_Wrist", "R_Wrist", f"{P}_Wrist"),
    ("eyeL", "eyeR", f"eye{P}"),
    ("forelegL1", "forelegR1", f"foreleg{P}1"),
    ("LEFT_EAR", "RIGHT_EAR", f"{P}_EAR"),
    ("left-paw", "right-paw", f"{P}-paw"),
    ("LShoulder", "RShoulder", f"{P}Shoulder"),
    ("LEye", "REye", f"{P}Eye"),
    ("l_ankle", "r_ankle", f"{P}_ankle"),
    ("Left Hand", "Right Hand", f"{P} Hand"),
    ("leftEye", "rightEye", f"{P}Eye"),
    ("front_paw_L", "front_paw_R", f"front_paw_{P}"),
    ("ear2l", "ear2r", f"ear2{P}"),
])
def test_sides_and_partners(left: str, right: str, template: str) -> None:
    assert side_of(left) == ("left", template)
    assert side_of(right) == ("right", template)
    assert partner_of(left) == right and partner_of(right) == left
    assert infer_flip_pairs([right, "nose", left]) == ((left, right),)


@pytest.mark.parametrize("name", [
    "Shoulder", "Lr", "nose", "tail_root", "throat", "wrist", "thumb1", "middle_finger1", "Lower_lip", "rear",
    "Rear", "head_top", "neck", "leftover", "Rightmost", "LR_corner", "elbow", "rl", "Lip", "ring_finger2",
])
def test_names_without_a_side(name: str) -> None:
    assert side_of(name) is None and partner_of(name) is None


def test_real_keypoint_lists() -> None:
    coco = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
            "right_knee", "left_ankle", "right_ankle"]
    assert len(infer_flip_pairs(coco)) == 8
    openpose = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip",
                "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar"]
    pairs = infer_flip_pairs(openpose)
    assert pairs[0] == ("LShoulder", "RShoulder") and pairs[-1] == ("LEar", "REar") and len(pairs) == 8
    ap10k = ["L_Eye", "R_Eye", "Nose", "Neck", "Root of tail", "L_Shoulder", "L_Elbow", "L_F_Paw", "R_Shoulder",
             "R_Elbow", "R_F_Paw", "L_Hip", "L_Knee", "L_B_Paw", "R_Hip", "R_Knee", "R_B_Paw"]
    assert infer_flip_pairs(ap10k) == (("L_Eye", "R_Eye"), ("L_Shoulder", "R_Shoulder"), ("L_Elbow", "R_Elbow"),
                                       ("L_F_Paw", "R_F_Paw"), ("L_Hip", "R_Hip"), ("L_Knee", "R_Knee"),
                                       ("L_B_Paw", "R_B_Paw"))
    fly = ["head", "thorax", "forelegL1", "forelegL2", "forelegR1", "forelegR2", "wingL", "wingR"]
    assert infer_flip_pairs(fly) == (("forelegL1", "forelegR1"), ("forelegL2", "forelegR2"), ("wingL", "wingR"))
    hand = ["wrist", "thumb1", "thumb2", "middle_finger1", "pinky_finger4"]
    assert infer_flip_pairs(hand) == ()


@pytest.mark.parametrize("joints", [MPII, FLIC], ids=lambda j: j.name)
def test_inferred_pairs_give_the_project_flip_permutations(joints) -> None:
    pairs = infer_flip_pairs(joints.names)
    assert check_flip_pairs(joints.names, pairs) == joints.flip


def test_pairs_follow_the_left_keypoint_order() -> None:
    names = ["r_hip", "l_knee", "nose", "r_knee", "l_hip"]
    assert infer_flip_pairs(names) == (("l_knee", "r_knee"), ("l_hip", "r_hip"))


@pytest.mark.parametrize(("names", "message"), [
    (["left_eye", "nose"], r"keypoint 'left_eye' has a side but its partner 'right_eye' is not among the keypoints"),
    (["eyeR"], r"keypoint 'eyeR' has a side but its partner 'eyeL'"),
    (["Left_eye", "right_eye"], r"keypoint 'Left_eye' has a side but its partner 'Right_eye'"),  # spelling kept
    (["L_eye", "right_eye"], r"keypoint 'L_eye' has a side but its partner 'R_eye'"),
    (["left_paw_r", "right_paw_r"], r"keypoint 'left_paw_r' has 2 side words \('left', 'r'\)"),
    (["LeftEyeR"], r"keypoint 'LeftEyeR' has 2 side words"),
    (["nose", "l_eye", "nose", "r_eye"], r"keypoint 'nose' appears twice"),
])
def test_inference_errors(names: list[str], message: str) -> None:
    with pytest.raises(FlipPairError, match=message):
        infer_flip_pairs(names)


def test_two_side_words_in_side_of() -> None:
    with pytest.raises(FlipPairError, match=r"'l r' has 2 side words"):
        side_of("l r")


def test_check_flip_pairs() -> None:
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    assert check_flip_pairs(names, [("left_eye", "right_eye"), ["right_ear", "left_ear"]]) == (0, 2, 1, 4, 3)
    assert check_flip_pairs(names, []) == (0, 1, 2, 3, 4)
    with pytest.raises(FlipPairError, match=r"'left_elbow' is not one of the keypoints"):
        check_flip_pairs(names, [("left_elbow", "right_eye")])
    with pytest.raises(FlipPairError, match=r"keypoint 'left_eye' is in two flip pairs: \('left_eye', 'right_eye'\) "
                                            r"and \('left_eye', 'right_ear'\)"):
        check_flip_pairs(names, [("left_eye", "right_eye"), ("left_eye", "right_ear")])
    with pytest.raises(FlipPairError, match=r"flip pair \('nose', 'nose'\): pairs keypoint 'nose' with itself"):
        check_flip_pairs(names, [("nose", "nose")])
    with pytest.raises(FlipPairError, match=r"flip pair \('nose', 'left_eye', 'right_eye'\): expected two"):
        check_flip_pairs(names, [("nose", "left_eye", "right_eye")])
    with pytest.raises(FlipPairError, match=r"flip pair \('left_eye',\): expected two"):
        check_flip_pairs(names, ["left_eye"])
