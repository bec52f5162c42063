"""Recipes: configurations written as what they change in params.yaml, so every value has one home.

``params.yaml`` is complete (the schema has no defaults) and is the CPU preset. A recipe (``recipes/mpii.yaml``)
holds only the keys whose values differ from it, and may name a recipe it builds on (``extends: mpii``: FLIC is
the MPII recipe with FLIC's data and schedule). Applying a recipe rewrites ``params.yaml`` in place with those
values — comments of the keys it does not touch kept — so DVC, ``dvc params diff`` and ``dvc exp run -S`` see an
ordinary, complete params file, and ``git checkout params.yaml`` goes back to the preset.

Every key a recipe sets must already exist in the base (a typo is an error naming the file and key, never a new
setting); only ``train.variants`` may gain entries. The composed result is validated before anything is written.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from hourglass.config.params_file import ConfigError, parse_params
from hourglass.io.atomic import write_atomic

EXTENDS = "extends"  # the one key of a recipe that is not a params key
OPEN_MAPPINGS = ("train.variants",)  # mappings whose entries are names, not settings: recipes may add to them


class RecipeError(ConfigError):
    """A recipe file is missing, malformed, names an unknown key, or composes to an invalid configuration."""


def recipe_path(name_or_path: str | Path, recipes_dir: str | Path = "recipes") -> Path:
    """``mpii`` -> ``recipes/mpii.yaml``; a path to a file is taken as it is."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path
    return Path(recipes_dir) / f"{name_or_path}.yaml"


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        known = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise RecipeError(f"{path}: recipe not found" + (f" (recipes here: {', '.join(known)})" if known else ""))\
            from None
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: expected a mapping of params keys, got {type(raw).__name__}")
    return raw


def recipe_chain(path: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """The recipe and those it extends, base first: [(recipes/mpii.yaml, {...}), (recipes/flic.yaml, {...})]."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    current: Path | None = Path(path)
    while current is not None:
        if any(current.resolve() == seen.resolve() for seen, _ in chain):
            raise RecipeError(f"{current}: '{EXTENDS}' makes a cycle ({' -> '.join(str(p) for p, _ in chain)})")
        overlay = _read_mapping(current)
        parent = overlay.pop(EXTENDS, None)
        chain.append((current, overlay))
        current = None if parent is None else recipe_path(parent, current.parent)
    return chain[::-1]


def _leaves(overlay: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every setting in ``overlay``; mappings are descended into, lists are values."""
    for key, value in overlay.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and not any(dotted == m for m in OPEN_MAPPINGS):
            yield from _leaves(value, dotted + ".")
        else:
            yield dotted, value


def _check_key(base: dict[str, Any], dotted: str, source: Path) -> None:
    node: Any = base
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(parts[:depth]) or "the top level"
            raise RecipeError(f"{source}: {dotted!r} is not a key of the params file ({part!r} not in {where}); "
                              "a recipe may only change existing settings")
        node = node[part]


def compose(base: dict[str, Any], chain: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """``base`` with every recipe of ``chain`` applied in order (plain dicts; nothing is validated here)."""
    import copy

    out = copy.deepcopy(base)
    for source, overlay in chain:
        for dotted, value in _leaves(overlay):
            _check_key(out, dotted, source)
            *parents, leaf = dotted.split(".")
            node = out
            for part in parents:
                node = node[part]
            if dotted in OPEN_MAPPINGS:  # add or replace entries, keep the others
                node[leaf] = {**node[leaf], **value}
            else:
                node[leaf] = copy.deepcopy(value)
    return out


def composed_params(params_path: str | Path, recipe: str | Path) -> dict[str, Any]:
    """The raw params a recipe gives when applied to ``params_path``, validated (RecipeError names the recipe)."""
    params_path, recipe = Path(params_path), Path(recipe)
    base = yaml.safe_load(params_path.read_text())
    raw = compose(base, recipe_chain(recipe))
    try:
        parse_params(raw, f"{params_path} with {recipe}")
    except ConfigError as err:
        raise RecipeError(str(err)) from None
    return raw


def changed_keys(before: Any, after: Any, prefix: str = "") -> set[str]:
    """Dotted keys whose values differ between two raw configurations (a mapping compared key by key)."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return set() if before == after else {prefix.rstrip(".")}
    return {k for key in before.keys() | after.keys()
            for k in changed_keys(before.get(key), after.get(key), f"{prefix}{key}.")}


# -- rewriting params.yaml in place ---------------------------------------------------------------------------------
def _comment_of(mapping: Any, key: str) -> str | None:
    """The end-of-line comment of ``key`` in a round-trip-loaded mapping (its first line), if any."""
    entry = getattr(mapping, "ca", None) and mapping.ca.items.get(key)
    token = entry[2] if entry and len(entry) > 2 else None
    if token is None:
        return None
    first = token.value.split("\n", 1)[0].strip()
    return first if first.startswith("#") else None


COMMENT_COLUMN = 23  # where params.yaml's end-of-line comments start


def _set_comment(mapping: CommentedMap, key: str, text: str) -> None:
    """Replace ``key``'s end-of-line comment (and its indented continuation lines) by ``text``, keeping the
    column-0 comments that ruamel attaches to it but that belong to what follows."""
    entry = mapping.ca.items.get(key)
    token = entry[2] if entry and len(entry) > 2 else None
    if token is None:
        mapping.yaml_add_eol_comment(text, key, column=COMMENT_COLUMN)
        return
    lines = token.value.split("\n")
    following = [line for line in lines[1:] if not line.startswith(" ")]
    token.value = "\n".join([text, *following])


def _round_trip() -> YAML:
    """A ruamel loader/dumper that writes params.yaml as it is written by hand: its indentation, quotes, long lines
    unwrapped and ``null`` spelled out."""
    rt = YAML()
    rt.width = 4096
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return rt


def apply_recipe(params_path: str | Path, recipe: str | Path, out_path: str | Path | None = None) -> list[str]:
    """Write ``params_path`` with ``recipe`` applied to ``out_path`` (default: in place, atomically); returns the
    dotted keys whose value changed. Nothing is written when the result does not validate. A key that several
    recipes of the chain set is written once, with the last one's value and comment."""
    params_path, recipe = Path(params_path), Path(recipe)
    expected = composed_params(params_path, recipe)
    rt = _round_trip()  # keeps comments, order, flow styles and the recipe's own spelling of numbers
    document = rt.load(params_path.read_text())
    before = yaml.safe_load(params_path.read_text())
    last: dict[str, tuple[Path, Any, str]] = {}  # dotted key -> (recipe, its round-trip node, leaf): the last setter
    for source, _ in recipe_chain(recipe):
        overlay_doc = rt.load(source.read_text())
        plain = _read_mapping(source)
        plain.pop(EXTENDS, None)
        for dotted, _value in _leaves(plain):
            *parents, leaf = dotted.split(".")
            overlay_node = overlay_doc
            for part in parents:
                overlay_node = overlay_node[part]
            if dotted in OPEN_MAPPINGS and dotted in last:  # entries accumulate along the chain
                merged = last[dotted][1][leaf]
                merged.update(overlay_node[leaf])
                continue
            last[dotted] = (source, overlay_node, leaf)
    for dotted, (source, overlay_node, leaf) in last.items():
        node = document
        for part in dotted.split(".")[:-1]:
            node = node[part]
        if dotted in OPEN_MAPPINGS:
            node[leaf].update(overlay_node[leaf])
            continue
        if node[leaf] == overlay_node[leaf]:
            continue
        node[leaf] = overlay_node[leaf]
        _set_comment(node, leaf, _comment_of(overlay_node, leaf) or f"# {source}")
    buffer = io.StringIO()
    rt.dump(document, buffer)
    text = buffer.getvalue()
    if yaml.safe_load(text) != expected:  # the round trip must say exactly what the plain composition says
        raise RecipeError(f"{recipe}: rewriting {params_path} would not give the composed configuration")
    write_atomic(out_path or params_path, text)
    return sorted(changed_keys(before, expected))


def load_with_recipe(params_path: str | Path, recipe: str | Path | None,
                     overrides: dict[str, Any] | None = None) -> Any:
    """The validated config of ``params_path`` with ``recipe`` applied (None: as it is) and dotted ``overrides``
    (``{"model.input_res": 128}``), without writing anything: for tools that measure a recipe's settings."""
    from hourglass.config.params_file import load_params

    if recipe is None:
        return load_params(params_path, overrides)
    raw = composed_params(params_path, recipe_path(recipe, Path(params_path).parent / "recipes"))
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return parse_params(raw, f"{params_path} with recipe {recipe}")
