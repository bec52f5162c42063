"""dvc.yaml's code deps as the stages' import closures: check them, or write them.

A stage reruns when code it runs changes, and only then, if its code deps are exactly the project files its module
imports. Each stage's ``cmd`` names a module (``python -m pipeline.X``); its closure is every module of this project
the module imports at any depth, found from the import statements (imports inside functions count: a stage may run
them), plus the packages' ``__init__`` files. After moving or adding modules run
``python -m pipeline.dvc_deps --write``; ``--check`` (the default) exits 1 and names the stages that are off.
"""

from __future__ import annotations

import argparse
import modulefinder
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("hourglass", "pipeline")
_CMD_MODULE = re.compile(r"python -m (\S+)")
_DEP_LINE = re.compile(r"^(\s*)- ((?:hourglass|pipeline)/\S+\.py)\s*$")


class _ProjectFinder(modulefinder.ModuleFinder):
    """A module finder that follows this project's imports only (third-party packages are not code deps)."""

    def import_module(self, partname, fqname, parent):  # noqa: ANN001, ANN201 (ModuleFinder's signature)
        if fqname.split(".")[0] not in PROJECT:
            return None
        return super().import_module(partname, fqname, parent)


def import_closure(module: str, repo: Path = REPO) -> set[str]:
    """Repo-relative paths of the project files ``python -m module`` imports (its packages' ``__init__``s too)."""
    finder = _ProjectFinder(path=[str(repo)])
    finder.run_script(str(repo / (module.replace(".", "/") + ".py")))
    finder.import_hook(module.rsplit(".", 1)[0])  # -m imports the package first
    files = {Path(m.__file__).resolve() for m in finder.modules.values() if m.__file__}
    return {p.relative_to(repo).as_posix() for p in files if repo in p.parents}


def stages(dvc_yaml: Path = REPO / "dvc.yaml") -> dict[str, dict]:
    """dvc.yaml's stages, a foreach stage by its ``do`` template (a matrix stage is its own template)."""
    raw = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    return {name: stage.get("do", stage) for name, stage in raw.items()}


def stage_module(stage: dict) -> str:
    """The module a stage's ``cmd`` runs with ``python -m``."""
    found = _CMD_MODULE.search(stage["cmd"])
    if found is None:
        raise ValueError(f"dvc.yaml: stage cmd {stage['cmd']!r} does not run `python -m <module>`")
    return found.group(1)


def code_deps(stage: dict) -> set[str]:
    """The stage's deps that are files of this project."""
    return {d for d in stage.get("deps", []) if isinstance(d, str) and d.split("/")[0] in PROJECT}


def mismatches(repo: Path = REPO) -> dict[str, tuple[list[str], list[str]]]:
    """Per stage that is off: (files it imports that its deps lack, deps it never imports)."""
    out = {}
    for name, stage in stages(repo / "dvc.yaml").items():
        closure, deps = import_closure(stage_module(stage), repo), code_deps(stage)
        if closure != deps:
            out[name] = (sorted(closure - deps), sorted(deps - closure))
    return out


def rewrite(text: str, closures: dict[str, set[str]]) -> str:
    """``text`` (dvc.yaml) with each stage's code-dep lines replaced by its sorted closure, where the first of
    them stood; comments, other deps and everything else are kept as they are."""
    lines, out, stage, written = text.splitlines(keepends=True), [], None, set()
    for line in lines:
        header = re.match(r"^  (\w[\w-]*):\s*$", line)
        if header:
            stage = header.group(1)
        dep = _DEP_LINE.match(line)
        if dep is None or stage not in closures:
            out.append(line)
            continue
        if stage not in written:
            written.add(stage)
            out.extend(f"{dep.group(1)}- {path}\n" for path in sorted(closures[stage]))
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.dvc_deps", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="report stages whose code deps are off (the default)")
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps from the import closures")
    args = parser.parse_args(argv)
    if args.write:
        from hourglass.io.atomic import write_atomic

        closures = {name: import_closure(stage_module(stage)) for name, stage in stages().items()}
        dvc_yaml = REPO / "dvc.yaml"
        write_atomic(dvc_yaml, rewrite(dvc_yaml.read_text(encoding="utf-8"), closures))
    off = mismatches()
    for name, (missing, extra) in off.items():
        print(f"{name}: missing {missing or '-'}; never imported {extra or '-'}", file=sys.stderr)
    return 1 if off else 0


if __name__ == "__main__":
    sys.exit(main())
