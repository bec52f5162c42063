"""Left/right keypoint pairs read off keypoint names, for datasets that ship names but no flip permutation.

Flip augmentation and the flip test need to know which joint a joint becomes in the mirrored image. COCO-style
files (COCO, CrowdPose, AP-10K, CVAT and Label Studio exports) name the keypoints but do not say this, and the names
follow no one convention: ``left_eye``, ``L_Wrist``, ``eyeL``, ``forelegL1``, ``LEFT_EAR``, ``RShoulder``. A name is
split into words (at ``_``, ``-``, spaces and other punctuation, digits and camelCase boundaries); a word that is
``l``, ``r``, ``left`` or ``right`` in any case is the side. Its partner is the same name with that word swapped to
the other side in the same spelling (``L`` <-> ``R``, ``left`` <-> ``right``, ``Left`` <-> ``Right``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

SIDE_PLACEHOLDER = "{side}"
_SIDES = {"l": "left", "left": "left", "r": "right", "right": "right"}
_SWAP = {"l": "r", "r": "l", "left": "right", "right": "left"}


class FlipPairError(ValueError):
    """Left/right pairs that cannot be inferred or do not fit the keypoints; the message names the value."""


def _words(name: str) -> list[tuple[int, int]]:
    """(start, end) of each word of letters: runs of letters cut where lower case meets upper case, and before the
    last capital of a run of capitals followed by a lower-case letter (``RShoulder`` -> ``R``, ``Shoulder``)."""
    words: list[tuple[int, int]] = []
    start: int | None = None
    for i, ch in enumerate(name):
        if not ch.isalpha():
            if start is not None:
                words.append((start, i))
                start = None
            continue
        if start is None:
            start = i
            continue
        prev = name[i - 1]
        nxt = name[i + 1] if i + 1 < len(name) else ""
        if (prev.islower() and ch.isupper()) or (prev.isupper() and ch.isupper() and nxt.islower()):
            words.append((start, i))
            start = i
    if start is not None:
        words.append((start, len(name)))
    return words


def _side_token(name: str) -> tuple[str, int, int] | None:
    """The side ('left'/'right') and the span of the one side word of ``name``; None without one."""
    found = [(s, e) for s, e in _words(name) if name[s:e].lower() in _SIDES]
    if not found:
        return None
    if len(found) > 1:
        words = ", ".join(repr(name[s:e]) for s, e in found)
        raise FlipPairError(f"keypoint {name!r} has {len(found)} side words ({words}); expected at most one")
    start, end = found[0]
    return _SIDES[name[start:end].lower()], start, end


def _swapped(token: str) -> str:
    """``token`` on the other side, spelt the same way: l<->r, L<->R, left<->right, Left<->Right, LEFT<->RIGHT."""
    other = _SWAP[token.lower()]
    if token.isupper():
        return other.upper()
    if token[0].isupper():
        return other.capitalize()
    return other


def side_of(name: str) -> tuple[str, str] | None:
    """``('left' | 'right', name with the side word replaced by SIDE_PLACEHOLDER)``, or None for a name without a
    side (``nose``, ``Lower_lip``, ``rear``). A name with two side words is a FlipPairError."""
    token = _side_token(name)
    if token is None:
        return None
    side, start, end = token
    return side, name[:start] + SIDE_PLACEHOLDER + name[end:]


def partner_of(name: str) -> str | None:
    """The name of the keypoint ``name`` swaps with under mirroring (None without a side word)."""
    token = _side_token(name)
    if token is None:
        return None
    _, start, end = token
    return name[:start] + _swapped(name[start:end]) + name[end:]


def infer_flip_pairs(names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Every (left_name, right_name) pair of ``names``, in the order the left keypoints appear. A name with a side
    but no partner, or with two side words, or a repeated name, is a FlipPairError naming it."""
    names = [str(n) for n in names]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FlipPairError(f"keypoint {name!r} appears twice in the keypoint names")
        seen.add(name)
    pairs: list[tuple[str, str]] = []
    for name in names:
        token = _side_token(name)
        if token is None:
            continue
        side, start, end = token
        partner = name[:start] + _swapped(name[start:end]) + name[end:]
        if partner not in seen:
            raise FlipPairError(f"keypoint {name!r} has a side but its partner {partner!r} is not among the "
                                f"keypoints {names}")
        if side == "left":
            pairs.append((name, partner))
    return tuple(pairs)


def check_flip_pairs(names: Sequence[str], pairs: Sequence[Sequence[str]]) -> tuple[int, ...]:
    """The flip permutation of ``names`` given ``pairs`` (``perm[j]`` is the index joint ``j`` becomes when the
    image is mirrored; unpaired joints map to themselves). A name not among the keypoints, a keypoint in two pairs,
    a pair of a keypoint with itself, or a pair that is not two names is a FlipPairError naming it."""
    index = {str(n): i for i, n in enumerate(names)}
    perm = list(range(len(names)))
    used: dict[str, tuple[str, ...]] = {}
    for pair in pairs:
        pair = tuple(str(p) for p in pair) if not isinstance(pair, str) else (pair,)
        if len(pair) != 2:
            raise FlipPairError(f"flip pair {pair!r}: expected two keypoint names")
        a, b = pair
        for name in pair:
            if name not in index:
                raise FlipPairError(f"flip pair {pair!r}: {name!r} is not one of the keypoints {list(index)}")
        if a == b:
            raise FlipPairError(f"flip pair {pair!r}: pairs keypoint {a!r} with itself")
        for name in pair:
            if name in used:
                raise FlipPairError(f"keypoint {name!r} is in two flip pairs: {used[name]!r} and {pair!r}")
            used[name] = pair
        perm[index[a]], perm[index[b]] = index[b], index[a]
    return tuple(perm)
