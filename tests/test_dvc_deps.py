"""dvc.yaml's code deps are the stages' import closures: a stage reruns when code it runs changes, and only then.

Each stage's ``cmd`` names a module (``python -m pipeline.X``); its closure is every module of this project that
the module imports, at any depth, found from the import statements (so imports inside functions count: a stage may
run them). The check is exact in both directions: a file of the closure missing from the stage's deps would let a
stale result look current, and a dep outside it would rerun the stage for nothing.
"""

from __future__ import annotations

import modulefinder
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("hourglass", "pipeline")


class _ProjectFinder(modulefinder.ModuleFinder):
    """A module finder that follows this project's imports only (third-party packages are not code deps)."""

    def import_module(self, partname, fqname, parent):  # noqa: ANN001, ANN201 (ModuleFinder's signature)
        if fqname.split(".")[0] not in PROJECT:
            return None
        return super().import_module(partname, fqname, parent)


def import_closure(module: str) -> set[str]:
    """Repo-relative paths of the project files ``python -m module`` imports (its package ``__init__``s too)."""
    finder = _ProjectFinder(path=[str(REPO)])
    finder.run_script(str(REPO / (module.replace(".", "/") + ".py")))
    finder.import_hook(module.rsplit(".", 1)[0])  # -m imports the package first
    files = {Path(m.__file__).resolve() for m in finder.modules.values() if m.__file__}
    return {p.relative_to(REPO).as_posix() for p in files if REPO in p.parents}


def stages() -> dict[str, dict]:
    """dvc.yaml's stages, a foreach stage by its ``do`` template (a matrix stage is its own template)."""
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in raw.items()}


def code_deps(stage: dict) -> set[str]:
    return {d for d in stage.get("deps", []) if isinstance(d, str) and d.split("/")[0] in PROJECT}


@pytest.mark.parametrize("name", sorted(stages()))
def test_code_deps_are_exactly_the_stage_import_closure(name):
    stage = stages()[name]
    module = re.search(r"python -m (\S+)", stage["cmd"]).group(1)
    closure, deps = import_closure(module), code_deps(stage)
    assert not closure - deps, f"{name}: dvc.yaml deps lack files the stage imports: {sorted(closure - deps)}"
    assert not deps - closure, f"{name}: dvc.yaml deps list files the stage never imports: {sorted(deps - closure)}"
