"""dvc.yaml's code deps are the stages' import closures: a stage reruns when code it runs changes, and only then.

The check is exact in both directions: a file of the closure missing from the stage's deps would let a stale result
look current, and a dep outside it would rerun the stage for nothing. ``python -m pipeline.dvc_deps --write``
repairs dvc.yaml after modules move.
"""

from __future__ import annotations

import pytest

from pipeline.dvc_deps import REPO, code_deps, import_closure, rewrite, stage_module, stages


@pytest.mark.parametrize("name", sorted(stages()))
def test_code_deps_are_exactly_the_stage_import_closure(name):
    stage = stages()[name]
    closure, deps = import_closure(stage_module(stage)), code_deps(stage)
    assert not closure - deps, f"{name}: dvc.yaml deps lack files the stage imports: {sorted(closure - deps)}"
    assert not deps - closure, f"{name}: dvc.yaml deps list files the stage never imports: {sorted(deps - closure)}"


def test_rewrite_replaces_only_the_code_deps_of_each_stage():
    text = (REPO / "dvc.yaml").read_text(encoding="utf-8")
    closures = {name: import_closure(stage_module(stage)) for name, stage in stages().items()}
    assert rewrite(text, closures) == text  # already exact: nothing changes, comments included
    drifted = rewrite(text, {**closures, "report": {"pipeline/report.py", "hourglass/zzz.py"}})
    assert drifted.count("hourglass/zzz.py") == 1 and "# " in drifted
    assert drifted.splitlines()[: text.splitlines().index("  report:")] == text.splitlines()[
        : text.splitlines().index("  report:")]
