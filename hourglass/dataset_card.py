"""Dataset cards: one YAML file per dataset (``datasets/<name>.yaml``) says everything the pipeline needs to know.

A card names the keypoints in array order, the left/right pairs a mirror swaps, the skeleton to draw, how the
annotations come in (``format``), how a person is cropped, which accuracy measure applies and how it is normalised,
and, for the paper's datasets, the published numbers printed beside ours. The code asks the card; it never branches
on a dataset's name. MPII, FLIC and the synthetic people are cards like any other (``datasets/`` in the checkout).

Cards are looked up by name in ``./datasets/`` (the project a stage runs in) and then in the checkout's own
``datasets/`` folder; a path ending in ``.yaml`` is read as it is. A card with an unknown key, an unknown keypoint
name in a pair, an edge or a group, or a keypoint in two pairs fails with a :class:`CardError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hourglass.config import SourceConfig
from hourglass.flip_pairs import SIDE_PLACEHOLDER, side_of

SHIPPED_CARDS = Path(__file__).resolve().parents[1] / "datasets"  # mpii, flic, synthetic, synthetic_flic
PROJECT_CARDS = Path("datasets")  # the running project's own cards (relative to the stage's working directory)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class CardError(ValueError):
    """A card is missing or invalid; the message names the file and the key or value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PublishedRow(_Strict):
    """One row of published numbers (per joint group, in %), printed beside ours with its source."""

    name: str  # 'paper: 8-stack, final'
    source: str  # 'paper¹, MPII validation'
    values: dict[str, float]  # group -> percent
    ablation: bool = False  # also printed under the ablation table (the paper's MPII rows are)


class Released(_Strict):
    """The authors' released predictions, scored beside ours (paths inside shared/anchor-data)."""

    predictions: str  # their prediction file
    ground_truth: str  # the annotation file it is scored against
    card: str  # the card that scores it (the synthetic people borrow MPII's)


class Published(_Strict):
    """The published reference numbers of a dataset (the paper's MPII and FLIC results)."""

    dataset: str  # whose numbers these are, as the report names it: 'MPII', 'FLIC'
    rows: tuple[PublishedRow, ...]
    footnote: str  # where the rows come from, printed under every table that shows them
    summary: str  # the headline, as the report's summary quotes it
    figure5: tuple[str, str, str] | None = None  # (label, first-hourglass row name, final row name)
    released: Released | None = None


class Measure(_Strict):
    """How predictions are scored: PCK with a per-person normaliser, its table groups and its means."""

    metric: Literal["PCKh", "PCK"]  # PCKh: head-normalised (MPII); PCK: by the torso or the person box
    normalize: Literal["head", "torso", "box"]  # head: 0.6 x head-box diagonal; torso: ||rsho - lhip||; box:
    # the longer side of the person box. The annotation rows carry the value (``normalize``), written once when the
    # data come in; the name says what it is.
    threshold: float = Field(gt=0, le=1)
    curve_max: float = Field(gt=0, le=1)  # the PCK curve goes 0, 0.01, ..., curve_max
    mean_excludes: tuple[str, ...] = ()  # keypoints left out of the Mean (MPII: pelvis, thorax)
    mean_at_0_1: bool = False  # report the Mean at threshold 0.1 too (MPII's PCKh@0.1)
    groups: dict[str, tuple[str, ...]] | None = None  # table columns; None: one per keypoint, pairs merged
    ablation_keypoints: tuple[str, ...] | None = None  # the ablation figure's accuracy; None: every keypoint
    ablation_label: str | None = None  # what the ablation accuracy averages, in words
    mean_note: str | None = None  # what the Mean column averages, in words
    sigmas: tuple[float, ...] | None = None  # per-keypoint OKS sigmas: OKS AP is computed where they are known


class CocoSource(_Strict):
    """Where a ``format: coco`` dataset's files are: the COCO keypoints JSON(s) and the image folder, on disk or
    inside an export archive at ``url`` (a CVAT or Label Studio export zip, fetched and checked by its ETag)."""

    train: str  # the training annotation file (or the only one, split by ``valid_fraction``)
    valid: str | None  # the validation annotation file; None: ``train`` is split by file name
    images: str  # the folder the JSON's ``file_name`` values are relative to
    valid_fraction: float = Field(ge=0, lt=1)  # used when ``valid`` is None
    category_ids: tuple[int, ...] | None = None  # None: every keypoint category (they must share one list)
    # An export archive (zip or tar) at http(s):// or file://; train, valid and images are then paths inside it
    url: str | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")  # the archive's pinned digest (url only)

    @model_validator(mode="after")
    def _archive_paths(self) -> CocoSource:
        if self.url is None:
            if self.sha256 is not None:
                raise ValueError("coco.sha256 pins the archive at coco.url; give url too, or drop sha256")
            return self
        if not re.match(r"^(https?|file)://", self.url):
            raise ValueError(f"coco.url {self.url!r}: expected an http://, https:// or file:// URL")
        for key in ("train", "valid", "images"):
            value = getattr(self, key)
            if value is None:
                continue
            parts = value.replace("\\", "/").split("/")
            if value.startswith("/") or ".." in parts:
                raise ValueError(f"coco.{key} {value!r}: with coco.url it is a path inside the archive "
                                 "(relative, without '..')")
        return self

    def inside(self, root: Path) -> CocoSource:
        """This source with its archive paths resolved under ``root`` (where the export was extracted)."""
        def at(value: str | None) -> str | None:
            return None if value is None else str(root / value)

        return self.model_copy(update={"train": at(self.train), "valid": at(self.valid), "images": at(self.images)})


class DatasetCard(_Strict):
    """A validated card. Keypoint names are the dataset's array order; pairs, edges and groups use the names."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str
    format: Literal["coco", "mpii_h5", "flic_h5", "synthetic"]
    keypoints: tuple[str, ...] = Field(min_length=1)
    flip_pairs: tuple[tuple[str, str], ...]  # [name, name] swapped by a mirror; [] when none
    skeleton: tuple[tuple[str, str], ...]  # [name, name] edges to draw
    sides: Literal["person", "observer"]  # person: l_* is the person's left; observer: the image's left (FLIC)
    crop: Literal["center_scale", "box"]  # how a person's crop is given: MPII's centre and scale, or a box
    measure: Measure
    published: Published | None = None
    coco: CocoSource | None = None  # format: coco only
    # format: mpii_h5 / flic_h5: the files to fetch into data/raw/<name>/ (url, path, pins, extract); a lab's mirror
    # is this list with its own URLs (file:// for a copy on disk)
    download: tuple[SourceConfig, ...] = ()
    source_file: str | None = Field(None, exclude=True)  # where the card was read from (not part of the card)

    @field_validator("keypoints")
    @classmethod
    def _unique(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"keypoint names must be unique; repeated: {dupes}")
        empty = [i for i, n in enumerate(names) if not n.strip()]
        if empty:
            raise ValueError(f"keypoint {empty[0]} has an empty name")
        return names

    @model_validator(mode="after")
    def _names_known(self) -> DatasetCard:
        known = set(self.keypoints)

        def check(where: str, names: Sequence[str]) -> None:
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(f"{where}: unknown keypoint name(s) {unknown} (keypoints: {list(self.keypoints)})")

        seen: dict[str, int] = {}
        for i, (a, b) in enumerate(self.flip_pairs):
            check(f"flip_pairs[{i}]", (a, b))
            if a == b:
                raise ValueError(f"flip_pairs[{i}]: {a!r} is paired with itself")
            for name in (a, b):
                if name in seen:
                    raise ValueError(f"flip_pairs: keypoint {name!r} is in two pairs ({seen[name]} and {i})")
                seen[name] = i
        for i, edge in enumerate(self.skeleton):
            check(f"skeleton[{i}]", edge)
        m = self.measure
        check("measure.mean_excludes", m.mean_excludes)
        for group, members in (m.groups or {}).items():
            check(f"measure.groups.{group}", members)
        if m.ablation_keypoints is not None:
            check("measure.ablation_keypoints", m.ablation_keypoints)
        if m.sigmas is not None and len(m.sigmas) != len(self.keypoints):
            raise ValueError(f"measure.sigmas: {len(m.sigmas)} values for {len(self.keypoints)} keypoints")
        if set(m.mean_excludes) >= known:
            raise ValueError("measure.mean_excludes: leaves no keypoint in the Mean")
        if (self.format == "coco") != (self.coco is not None):
            raise ValueError("coco: required with format: coco, and only then")
        downloaded = self.format in ("mpii_h5", "flic_h5")
        if downloaded != bool(self.download):
            raise ValueError("download: sources are required with format mpii_h5 / flic_h5, and only then")
        paths = [s.path for s in self.download]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise ValueError(f"download: two sources write the same path {dupes}")
        if self.format == "coco" and m.normalize != "box":
            raise ValueError("measure.normalize: a COCO dataset is normalised by the person box ('box')")
        return self

    # -- what the pipeline asks ------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.keypoints)

    def index(self, name: str) -> int:
        return self.keypoints.index(name)

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """``perm[j]``: the index keypoint ``j`` becomes when the image is mirrored."""
        perm = list(range(self.count))
        for a, b in self.flip_pairs:
            ia, ib = self.index(a), self.index(b)
            perm[ia], perm[ib] = ib, ia
        return tuple(perm)

    @property
    def keypoint_sides(self) -> tuple[str, ...]:
        """Per keypoint 'left', 'right' or 'centre': in a pair, the member whose name carries a side token says
        which it is; a pair without side tokens (a horse's near/off legs) has its first member on the left."""
        sides = ["centre"] * self.count
        for a, b in self.flip_pairs:
            found = side_of(a) or side_of(b)
            a_left = found is None or (found[0] == "left") == (side_of(a) is not None)
            sides[self.index(a)], sides[self.index(b)] = ("left", "right") if a_left else ("right", "left")
        return tuple(sides)

    @property
    def limbs(self) -> tuple[tuple[int, int], ...]:
        return tuple((self.index(a), self.index(b)) for a, b in self.skeleton)

    @property
    def table_groups(self) -> dict[str, tuple[str, ...]]:
        """The results table's columns: the card's groups, else one per keypoint with each pair merged."""
        if self.measure.groups is not None:
            return dict(self.measure.groups)
        partner = {a: b for a, b in self.flip_pairs} | {b: a for a, b in self.flip_pairs}
        groups: dict[str, tuple[str, ...]] = {}
        done: set[str] = set()
        for name in self.keypoints:
            if name in done:
                continue
            pair = (name, partner[name]) if name in partner else (name,)
            done.update(pair)
            groups[_group_label(pair)] = pair
        return groups

    def as_record(self) -> dict[str, Any]:
        """The card as plain data (what a checkpoint stores, so a model says what it predicts anywhere)."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """SHA-256 of the card's content (key order and formatting do not matter)."""
        return hashlib.sha256(json.dumps(self.as_record(), sort_keys=True).encode()).hexdigest()


def _group_label(pair: Sequence[str]) -> str:
    """A pair's column name: its name without the side token (``left_wrist``/``right_wrist`` -> Wrist,
    ``forelegL1``/``forelegR1`` -> Foreleg 1); pairs without side tokens keep both names."""
    if len(pair) == 1:
        return pair[0]
    side = side_of(pair[0]) or side_of(pair[1])
    if side is None:
        return "/".join(pair)
    words = re.split(r"[_\- ]+", side[1].replace(SIDE_PLACEHOLDER, " ").strip(" _-"))
    return " ".join(w for w in words if w).capitalize() or "/".join(pair)


# -- reading ---------------------------------------------------------------------------------------------------
def _format(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid dataset card"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<card>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        elif e["type"] == "missing":
            lines.append(f"  {key}: missing")
        else:
            lines.append(f"  {key}: {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_card(raw: Mapping[str, Any], source: str | Path = "<card>") -> DatasetCard:
    """Validate an already-parsed card."""
    if not isinstance(raw, Mapping):
        raise CardError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return DatasetCard.model_validate({**raw, "source_file": str(source)})
    except ValidationError as err:
        raise CardError(_format(Path(source), err)) from None


def read_card(path: str | Path) -> DatasetCard:
    """Read and validate the card file ``path``; its ``name`` must be the file's stem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CardError(f"{path}: dataset card not found") from None
    except yaml.YAMLError as err:
        raise CardError(f"{path}: not valid YAML: {err}") from None
    card = parse_card(raw, path)
    if card.name != path.stem:
        raise CardError(f"{path}: name {card.name!r} differs from the file name {path.stem!r}")
    return card


def card_search(first: Sequence[Path] = ()) -> tuple[Path, ...]:
    """The folders cards are looked up in: ``first`` (a project's, beside its params file), then ``./datasets``,
    then the checkout's own."""
    return tuple(dict.fromkeys([*map(Path, first), PROJECT_CARDS, SHIPPED_CARDS]))


def card_path(name: str, search: Sequence[Path] = (PROJECT_CARDS, SHIPPED_CARDS)) -> Path:
    """The file of card ``name``: the first ``<dir>/<name>.yaml`` of ``search``; a ``.yaml`` path as it is."""
    if name.endswith((".yaml", ".yml")):
        return Path(name)
    for folder in search:
        path = Path(folder) / f"{name}.yaml"
        if path.is_file():
            return path
    looked = ", ".join(str(Path(f) / f"{name}.yaml") for f in search)
    known = sorted({p.stem for f in search if Path(f).is_dir() for p in Path(f).glob("*.yaml")})
    raise CardError(f"dataset {name!r}: no card found (looked for {looked}); known cards: {known}. "
                    "Add one with `python -m pipeline.dataset add NAME --coco TRAIN.json --images DIR`")


def load_card(name: str, search: Sequence[Path] = (PROJECT_CARDS, SHIPPED_CARDS)) -> DatasetCard:
    """The card of dataset ``name`` (see :func:`card_path`)."""
    return read_card(card_path(name, search))


def card_from_record(record: Mapping[str, Any] | None, dataset: str | None,
                     legacy_joint_set: str | None = None) -> DatasetCard:
    """The card a checkpoint was trained with: its stored record, else the card of its dataset name (checkpoints
    written before cards existed: ``synthetic`` with ``synthetic.joint_set: flic`` is ``synthetic_flic``)."""
    if record:
        return parse_card(record, f"checkpoint card {record.get('name')!r}")
    if not dataset:
        raise CardError("the checkpoint names no dataset and stores no dataset card")
    if dataset == "synthetic" and legacy_joint_set == "flic":
        dataset = "synthetic_flic"
    return load_card(dataset)
