"""Apply a recipe to params.yaml: ``python -m pipeline.recipe mpii`` (then ``dvc repro``).

A recipe (``recipes/<name>.yaml``) holds only the settings in which it differs from params.yaml, the CPU preset;
this rewrites params.yaml in place with them (comments of untouched keys kept, the file validated first) and prints
what changed. ``git checkout params.yaml`` returns to the preset; ``dvc params diff`` shows what the recipe changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from hourglass.config.recipes import apply_recipe, changed_keys, composed_params, recipe_chain, recipe_path
from pipeline import stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", default=None,
                        help="a recipe name in --recipes (mpii, flic) or a path to a recipe file")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="the params file to rewrite (default: %(default)s)")
    parser.add_argument("--recipes", type=Path, default=Path("recipes"),
                        help="directory of named recipes (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the result here instead of rewriting --params")
    parser.add_argument("--check", action="store_true",
                        help="only validate the recipe against --params and print what it would change")
    parser.add_argument("--list", action="store_true", help="list the recipes in --recipes and exit")
    return parser


def apply(args: argparse.Namespace) -> str:
    """List the recipes, check one, or apply it; returns the summary line."""
    if args.list or args.recipe is None:
        names = sorted(p.stem for p in args.recipes.glob("*.yaml"))
        listing = f"recipes in {args.recipes}: {', '.join(names) or 'none'}"
        if args.list:
            return listing
        raise stage.UsageError(f"no recipe named; {listing}")
    path = recipe_path(args.recipe, args.recipes)
    chain = " <- ".join(str(p) for p, _ in recipe_chain(path))
    if args.check:
        changed = sorted(changed_keys(yaml.safe_load(args.params.read_text()), composed_params(args.params, path)))
        return (f"{args.params} with {chain}: valid; it would change {len(changed)} setting(s): "
                f"{', '.join(changed) or 'none'}")
    changed = apply_recipe(args.params, path, args.out)
    return (f"{args.out or args.params}: {chain} applied, {len(changed)} setting(s) changed: "
            f"{', '.join(changed) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    """Run the command; exit codes as :mod:`pipeline.stage` says (an invalid recipe is a config error: 2)."""
    return stage.run(build_parser(), apply, argv)


if __name__ == "__main__":
    raise SystemExit(main())
