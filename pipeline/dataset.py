"""Your own keypoints: write and check dataset cards (``datasets/<name>.yaml``).

    python -m pipeline.dataset add NAME --coco TRAIN.json --images DIR [--val VAL.json] [--flip-pairs auto|none]
    python -m pipeline.dataset add NAME --url https://.../export.zip [--coco PATH-IN-ARCHIVE] [--images ...]
    python -m pipeline.dataset check NAME

``add`` reads a COCO keypoints export (CVAT, Label Studio, COCO itself), takes the keypoint names and the skeleton
from its categories, infers the left/right flip pairs from the names (``left_eye``/``right_eye``, ``L_Wrist``,
``eyeL``, ``forelegL1``; edit the card's ``flip_pairs`` where your names say it otherwise, a horse's near/off legs
for instance), writes the card and prints what it inferred and how many people each split holds. Then set
``dataset: NAME`` in params.yaml and run ``dvc repro``. With ``--url`` the card names an export archive on a web
server or a shared disk instead of files on this machine (the paths are then inside the archive); the download
stage fetches and verifies it, and a scheduled retrain fetches it again when its ETag (or content) changed.
``check`` validates a card written or edited by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from hourglass.data.archive import UnsafeArchiveError
from hourglass.data.coco_export import cache_dir, ensure_archive, extracted
from hourglass.data.fetch import DownloadError
from hourglass.dataset_card import PROJECT_CARDS, CardError, card_path, parse_card, read_card
from hourglass.evaluation.coco_inputs import COCO_KEYPOINT_NAMES, COCO_SIGMAS
from hourglass.flip_pairs import FlipPairError, infer_flip_pairs
from hourglass.io.atomic import write_atomic
from hourglass.io.coco import CocoError, CocoPeople, read_coco, split_people
from pipeline import stage

log = logging.getLogger("pipeline.dataset")

PCK_THRESHOLD = 0.2  # PCK@0.2 by the box's longer side, as mmpose's PCKAccuracy reports on such datasets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.dataset", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="write datasets/NAME.yaml from a COCO keypoints export")
    add.add_argument("name", help="the dataset's name (letters, digits, _ . -): params.yaml `dataset: NAME`")
    add.add_argument("--coco", type=Path, default=None, metavar="TRAIN.json",
                     help="the COCO keypoints file (training people, or all people when --val is not given); "
                          "with --url a path inside the export, found by itself when the export holds one")
    add.add_argument("--images", type=Path, default=None, metavar="DIR",
                     help="the folder the file's `file_name` values are relative to; with --url a path inside the "
                          "export, found by itself when not given")
    add.add_argument("--url", default=None, metavar="URL",
                     help="a COCO export archive (zip or tar, as CVAT and Label Studio export it) at http(s):// or "
                          "file://; the scheduled retrain checks its ETag and fetches it again when it changed")
    add.add_argument("--sha256", default=None, metavar="HEX",
                     help="with --url: pin the archive's SHA-256 (a fixed release; a growing export is not pinned)")
    add.add_argument("--raw-root", type=Path, default=Path("data/raw"), metavar="DIR",
                     help="with --url: params `download.root`, beside which the archive is cached "
                          "(default: %(default)s)")
    add.add_argument("--val", type=Path, default=None, metavar="VAL.json",
                     help="a separate validation file; without it TRAIN.json is split by image file name")
    add.add_argument("--valid-fraction", type=float, default=0.1, metavar="F",
                     help="without --val: the share of images in validation, by a hash of the file name, so "
                          "adding images never moves one between splits (default: %(default)s)")
    add.add_argument("--flip-pairs", choices=("auto", "none"), default="auto",
                     help="auto: left/right pairs from the keypoint names (a side token without a partner is an "
                          "error); none: no pairs (flip augmentation then mirrors without swapping)")
    add.add_argument("--category", type=int, action="append", default=None, metavar="ID",
                     help="use only this category id (repeatable); default: every keypoint category, which must "
                          "share one keypoint list")
    add.add_argument("--description", default=None, help="one line saying what the dataset is")
    add.add_argument("--cards", type=Path, default=PROJECT_CARDS,
                     help="the folder cards are written to (default: %(default)s)")
    add.add_argument("--force", action="store_true", help="overwrite an existing card")
    check = commands.add_parser("check", help="validate a card and print what it says")
    check.add_argument("name", help="a card name (datasets/NAME.yaml) or a path to a card file")
    return parser


def _flow_list(items: Any) -> str:
    """``[[a, b], [c, d]]`` on one line, as a person would write it in the card."""
    return yaml.safe_dump(items, default_flow_style=True, width=10_000).strip()


def card_text(raw: dict[str, Any]) -> str:
    """The card as YAML: short lists on one line each, the nested sections in block style, key order kept."""
    out = io.StringIO()
    out.write(f"# Dataset card written by `python -m pipeline.dataset add`; edit it freely, then "
              f"`python -m pipeline.dataset check {raw['name']}`.\n")
    for key, value in raw.items():
        if key in ("keypoints", "flip_pairs", "skeleton"):
            out.write(f"{key}: {_flow_list(list(map(list, value)) if key != 'keypoints' else list(value))}\n")
        elif isinstance(value, dict):
            body = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False, width=118)
            out.write(body)
        else:
            out.write(yaml.safe_dump({key: value}, sort_keys=False, width=118))
    return out.getvalue()


def draft_card(name: str, people: CocoPeople, args: argparse.Namespace) -> dict[str, Any]:
    """The card ``add`` writes: keypoints and skeleton from the file, inferred pairs, PCK@0.2 by box, OKS sigmas
    where the keypoints are COCO's 17."""
    names = people.keypoint_names
    if args.flip_pairs == "none":
        pairs: tuple[tuple[str, str], ...] = ()
    else:
        try:
            pairs = infer_flip_pairs(names)
        except FlipPairError as err:
            raise CardError(f"{people.source}: {err}; name the pairs in the card, or use --flip-pairs none") from None
    measure: dict[str, Any] = {"metric": "PCK", "normalize": "box", "threshold": PCK_THRESHOLD,
                               "curve_max": PCK_THRESHOLD}
    if tuple(names) == COCO_KEYPOINT_NAMES:
        measure["sigmas"] = [round(float(s), 6) for s in COCO_SIGMAS]
    return {
        "name": name,
        "description": args.description or f"COCO keypoints from {people.source.name}: {len(names)} keypoints",
        "format": "coco",
        "keypoints": list(names),
        "flip_pairs": [list(p) for p in pairs],
        "skeleton": [list(e) for e in people.skeleton],
        "sides": "person",
        "crop": "box",
        "measure": measure,
        "coco": {"train": str(args.coco), "valid": None if args.val is None else str(args.val),
                 "images": str(args.images), "valid_fraction": args.valid_fraction,
                 "category_ids": args.category,
                 **({"url": args.url, "sha256": args.sha256} if args.url else {})},
    }


def _keypoint_files(root: Path) -> list[str]:
    """The JSON files under ``root`` that hold a category with keypoints (COCO keypoints files), relative."""
    found = []
    for path in sorted(root.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and any(isinstance(c, dict) and c.get("keypoints")
                                          for c in data.get("categories", [])):
            found.append(path.relative_to(root).as_posix())
    return found


def _images_folder(root: Path, train: Path) -> Path:
    """Where the first listed image's ``file_name`` resolves: beside the file, the export's root, ``images/``."""
    first = next((im["file_name"] for im in json.loads(train.read_text()).get("images", []) if "file_name" in im),
                 None)
    candidates = [train.parent, root, root / "images", train.parent.parent / "images"]
    for folder in candidates:
        if first is not None and (folder / first).is_file():
            return folder
    raise CardError(f"--images: none of {[str(c.relative_to(root)) for c in candidates if c.is_relative_to(root)]} "
                    f"inside the export holds the first image {first!r}; give --images")


@contextlib.contextmanager
def _sources(args: argparse.Namespace) -> Iterator[argparse.Namespace]:
    """``args`` with --coco/--val/--images as files to read: as given, or inside the export at --url (fetched into
    the cache, extracted to a temporary folder); ``args`` itself gets the archive-relative names for the card."""
    if args.url is None:
        if args.coco is None or args.images is None:
            raise stage.UsageError("--coco and --images are required (or --url for an export archive)")
        yield args
        return
    archive, _ = ensure_archive(args.url, args.sha256, cache_dir(args.raw_root / args.name))
    with extracted(archive, args.raw_root) as root:
        if args.coco is None:
            found = _keypoint_files(root)
            if len(found) != 1:
                raise CardError(f"--url {args.url}: {len(found)} COCO keypoints files in the export {found}; "
                                "name the training file with --coco")
            args.coco = Path(found[0])
        for option in ("coco", "val", "images"):
            value = getattr(args, option)
            if value is not None and not (root / value).exists():
                raise CardError(f"--{option} {value}: not in the export {args.url} "
                                f"(keypoints files in it: {_keypoint_files(root)})")
        if args.images is None:
            args.images = _images_folder(root, root / args.coco).relative_to(root)
        yield argparse.Namespace(**{**vars(args), "coco": root / args.coco, "images": root / args.images,
                                    "val": None if args.val is None else root / args.val})


def add(args: argparse.Namespace) -> str:
    """Write ``<cards>/<name>.yaml`` (validated before it is written) and say what was inferred."""
    path = Path(args.cards) / f"{args.name}.yaml"
    if path.exists() and not args.force:
        raise stage.UsageError(f"{path} exists; pass --force to overwrite it")
    if args.url is None and args.sha256 is not None:
        raise stage.UsageError("--sha256 pins the archive at --url; give --url too")
    with _sources(args) as files:
        if not files.images.is_dir():
            raise CardError(f"--images {args.images}: not a folder")
        people = read_coco(files.coco, category_ids=args.category)
        raw = draft_card(args.name, people, args)
        card = parse_card(raw, path)  # every rule of a hand-written card holds for a generated one
        if args.val is not None:
            splits = {"train": people, "valid": read_coco(files.val, category_ids=args.category)}
        else:
            splits = split_people(people, args.valid_fraction)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, card_text(raw))
    lines = [f"wrote {path}", f"  keypoints ({card.count}): {', '.join(card.keypoints)}"]
    if card.flip_pairs:
        lines.append(f"  flip pairs ({len(card.flip_pairs)}, inferred from the names): "
                     + ", ".join(f"{a}<->{b}" for a, b in card.flip_pairs))
    else:
        why = "--flip-pairs none" if args.flip_pairs == "none" else "no left/right names found"
        lines.append(f"  flip pairs: none ({why})")
        log.warning("no flip pairs: flip augmentation (augment.flip_prob) and the flip test would mirror the image "
                    "without swapping any keypoints; right for symmetric keypoints (a hand's), wrong for sides")
    lines.append(f"  skeleton ({len(card.skeleton)} edges): " + (", ".join(f"{a}-{b}" for a, b in card.skeleton)
                                                              or "none in the file"))
    lines.append("  people per split: " + ", ".join(f"{split} {len(p)}" for split, p in splits.items()))
    skipped = {k: v for k, v in people.skipped.items() if v}
    lines.append("  skipped annotations: " + (", ".join(f"{k} {v}" for k, v in skipped.items()) or "none"))
    lines.append("  OKS AP: " + ("COCO's 17 sigmas" if card.measure.sigmas else
                                 "not computed (add measure.sigmas, one per keypoint, to the card)"))
    lines.append(f"next: set `dataset: {args.name}` in params.yaml and run `dvc repro`")
    return "\n".join(lines)


def check(args: argparse.Namespace) -> str:
    """Validate a card; print its keypoints, pairs and measure."""
    card = read_card(card_path(args.name))
    return (f"{card.source_file}: valid ({card.format}); {card.count} keypoints, {len(card.flip_pairs)} flip pairs, "
            f"{len(card.skeleton)} skeleton edges; {card.measure.metric}@{card.measure.threshold:g} by "
            f"{card.measure.normalize}" + ("; OKS sigmas" if card.measure.sigmas else ""))


def main(argv: list[str] | None = None) -> int:
    """Run ``add`` or ``check``; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), lambda args: add(args) if args.command == "add" else check(args), argv,
                     failures=(CardError, CocoError, DownloadError, UnsafeArchiveError))


if __name__ == "__main__":
    raise SystemExit(main())
