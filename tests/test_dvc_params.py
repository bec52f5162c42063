"""dvc.yaml's params are the keys each stage reads: the params half of deps that cannot drift (the code half is
tests/test_dvc_deps.py).

Every stage runs in this process, one after another, in a tiny project laid out as dvc.yaml implies (the repo's
params.yaml with tiny sizes), each through its entry point's ``main``. While a stage runs, every read of a config
field is recorded under its dotted params key: ``Section.__getattribute__`` is patched for the duration. Only
fields that hold values are keys; a field holding sections (``model``, ``train.variants``) is
reached on the way to them, and the sections' own reads are recorded. A section
instance is named by where it sits in a config parsed from params.yaml (found by identity, so a variant is
``train.variants.<name>``), else by its class's place in the schema (copies made by ``model_copy`` /
``model_validate`` in the code, e.g. ``hourglass.train.run_config.resolve_variant``'s model). ``model_dump`` of a
section counts as a read of all of it; a dump of the whole config (train writes it to config.yaml, the checkpoint and
the MLflow params, as a record of the run) is not a read of any key and is listed apart. Validation (pydantic's
validators while params.yaml is parsed) is not a read of the stage's.

Then, per stage, against its dvc.yaml ``params:`` (``${item.variant}`` resolved to the variant; a declared section
covers every key under it):

* every key read is declared, unless it is in ``UNDECLARED`` below, which says why it cannot change the outputs;
* every declared key has a read at or under it: nothing is declared that the stage never reads.

Branches that read keys only under some settings are run too (train under a ``step`` schedule as well as under a
``plateau`` that decays). Worker processes would escape the recording: every worker count is set so that the work
runs in this process (the synthetic generator and preprocessing run in-process at ``workers: 1``, the data loaders
at ``train.workers: 0``), and the spawn pool (``hourglass.data.parallel.ordered_map``) is replaced by one that
fails. The workers run the same per-item functions (``_render_task``, ``process_image``, ``PoseDataset``) on the
same config objects, so the in-process run reads what they would.

Not seen by this recording: ``pipeline.report`` copies the params.yaml text into results.md (provenance), i.e. the
report's text depends on every key, declared or not; the real downloads (``dataset: mpii/flic``) are not run here
(``download`` is declared whole, so whatever they read is covered).
"""

from __future__ import annotations

import contextlib
import sys
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from dvc_project import REPO, merge

from hourglass.config import ParamsConfig, Section

VARIANT = "hg_stacked_int"  # the variant trained and evaluated (flows.champion_variant by default)
RELEASE = "port"  # the released checkpoint imported and evaluated (a port-layout file made by tests/port_files.py)
SEED = 1  # the training seed of the matrix item run here (not the first of `seeds`: the stages get it in the cmd)

TINY = {
    "dataset": "synthetic",
    "sweep": [VARIANT],
    "seeds": [0, SEED],
    "synthetic": {"train_images": 10, "valid_images": 5, "workers": 1},  # workers 1: rendered in this process
    "preprocess": {"workers": 1},  # in this process
    "model": {"features": 16, "input_res": 64},
    # rotation_prob > 0: required_margin reads rotation_sigma/clip only then (preprocess declares them)
    "augment": {"enabled": True, "rotation_prob": 0.4, "scale_sigma": 0.25},
    # sgd + plateau with patience 0 and an unreachable threshold: the second epoch decays the rate, so the momentum
    # and every plateau key are read; the step schedule is run separately (STEP_RUN)
    "train": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 4, "val_batch_size": 8, "workers": 0, "log_every": 1,
              "optimizer": "sgd", "lr": 1e-3, "schedule": "plateau", "plateau_patience": 0,
              "plateau_threshold": 1000.0, "precision": "fp32"},
    "mlflow": {"enabled": False, "system_metrics": False},
    "report": {"examples": 2},
    "imports": {RELEASE: {"path": "weights/port.pth.tar", "input_res": 64, "commit": None}},
}
# A second training run, into a scratch directory, for the keys only the step schedule reads.
STEP_RUN = ["--set", "train.schedule=step", "--set", "train.milestones=[1]", "--set", "train.epochs=1"]

# Keys a stage reads but dvc.yaml deliberately does not declare, because they cannot change the stage's outputs
# (beyond the whole-config record train writes). Each reason was checked against the code that reads the key.
UNDECLARED: dict[str, dict[str, str]] = {
    "train": {
        # hourglass.train: used only as `step % log_every` before tracker.log_step, which sends step/loss and
        # step/lr to MLflow and writes nothing DVC tracks (epochs.csv and metrics.json are written per epoch).
        "train.log_every": "spacing of the MLflow per-step loss/lr records only",
        # hourglass.data.sampler.Draw: a sample's augmentation comes from (seed, epoch, position), not from the
        # loader worker that loads it (tests/test_dataset.py checks 0, 1 and 2 workers give the same batches).
        "train.workers": "data loader processes: the same batches, faster",
        # hourglass.train.fastpath.FastPath.loader_kwargs: DataLoader arguments that change when and where a batch is
        # prepared (ahead of time, in page-locked memory, by workers kept across epochs), never what it holds.
        "train.prefetch_factor": "batches each loader worker prepares ahead: the same batches",
        "train.pin_memory": "page-locked batches for asynchronous copies: the same batches",
        "train.persistent_workers": "loader workers kept across epochs: the same batches",
        # hourglass.train.run_config.sweep_position: only the "[variant seed s, k/N]" prefix of the per-epoch log
        # line; declaring them would retrain every variant when one is added to the sweep, every seed when a seed is
        # added. The run's own seed is in the stage's cmd (--seed ${item.seed}).
        "sweep": "the log line's 'variant seed s, k/N' only",
        "seeds": "the log line's 'variant seed s, k/N' only",
    },
    "download": {
        # hourglass.data.synthetic: image i of a split is drawn from SeedSequence([seed, split, i]).
        "synthetic.workers": "generator processes: the same images, faster",
    },
    "preprocess": {
        # hourglass.data.preprocess: each image is cropped on its own; results are collected in image order.
        "preprocess.workers": "processes cropping images: the same shards, faster",
        "preprocess.chunk_images": "images per worker task: the same shards",
    },
    "evaluate": {
        # The network and the input resolution come from the checkpoint's own config, never from params.yaml:
        # hourglass.inference.runner.load_model rebuilds the model from checkpoint["config"]["model"], and
        # hourglass.evaluation.split_predictions.dataset_params puts that ModelConfig into the params the dataset is
        # built from. The reads are of that ModelConfig (named by its class, "model"); params.yaml's model section
        # reaches this stage through its dep models/<variant>/checkpoint.pt.
        "model": "the checkpoint's stored model section, not params.yaml's (dep: the checkpoint)",
        "train.workers": "data loader processes: validation samples are not augmented, the same predictions",
    },
}
UNDECLARED["evaluate_import"] = UNDECLARED["evaluate"]  # the same stage, run on an imported model
# Allowed keys that must never be read from a section of the config parsed from params.yaml (only from copies and
# other instances of the class): evaluate's model is the checkpoint's, which the recording tells apart by identity.
ONLY_FROM_COPIES = {"evaluate": ("model",), "evaluate_import": ("model",)}

# Stages that dump the whole config (not a read of any key: a record of the run, next to its outputs).
WHOLE_CONFIG_DUMPS = {
    # So config.yaml and checkpoint.pt hold every key's value, declared or not (flows.cron too): they record the run;
    # what they compute (weights, metrics) depends only on the keys read.
    "train": "config.yaml, the checkpoint's config, the MLflow run params and the resume fingerprint's digest",
}


# -- naming a section instance by its params key ------------------------------------------------------------------
def _section_types(annotation: Any) -> Iterator[tuple[type[Section], bool]]:
    """The Section classes inside a field annotation, each with whether it is reached through a dict's values."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        yield annotation, False
        return
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is dict:
        for cls, _ in _section_types(args[1]):
            yield cls, True
        return
    for arg in args:
        yield from _section_types(arg)


def _schema_paths() -> tuple[dict[type, str], dict[type, frozenset[str]]]:
    """Each Section class's dotted path in ParamsConfig (``*`` for a dict key; the common prefix where a class
    occurs in several places: SourceConfig -> ``download``), and its leaf fields (those holding no section)."""
    paths: dict[type, list[str]] = {ParamsConfig: [""]}
    leaves: dict[type, frozenset[str]] = {}
    todo: list[tuple[type[Section], str]] = [(ParamsConfig, "")]
    while todo:
        cls, prefix = todo.pop()
        leaf = set()
        for name, field in cls.model_fields.items():
            inner = list(_section_types(field.annotation))
            if not inner:
                leaf.add(name)
            for sub, through_dict in inner:
                path = f"{prefix}{name}" + (".*" if through_dict else "")
                paths.setdefault(sub, []).append(path)
                todo.append((sub, path + "."))
        leaves[cls] = frozenset(leaf)
    common = {}
    for cls, found in paths.items():
        parts = [p.split(".") for p in found]
        shared = []
        for column in zip(*parts, strict=False):  # the common prefix: as long as the shortest
            if len(set(column)) > 1:
                break
            shared.append(column[0])
        common[cls] = ".".join(shared)
    return common, leaves


CLASS_PATHS, LEAF_FIELDS = _schema_paths()


def _tree_paths(node: Any, path: str, out: dict[int, str]) -> None:
    """``id -> dotted path`` of every section instance of a parsed config (tuple items take the tuple's path)."""
    if isinstance(node, Section):
        out[id(node)] = path
        for name in type(node).model_fields:
            _tree_paths(object.__getattribute__(node, name), f"{path}.{name}".lstrip("."), out)
    elif isinstance(node, dict):
        for key, value in node.items():
            _tree_paths(value, f"{path}.{key}", out)
    elif isinstance(node, (tuple, list)):
        for value in node:
            _tree_paths(value, path, out)


class Recorder:
    """The params keys read while it is active (see the module docstring)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.parsed_keys: set[str] = set()  # the reads of sections that are part of a config parsed from params.yaml
        self.whole_dumps = 0
        self._roots: list[ParamsConfig] = []  # kept alive, so the ids in _known stay theirs
        self._known: dict[int, str] = {}
        self._validating = 0

    def path_of(self, section: Section) -> tuple[str, bool]:
        """The section's dotted path, and whether it is part of a config parsed from params.yaml (else a copy)."""
        known = self._known.get(id(section))
        if known is not None:
            return known, True
        return CLASS_PATHS.get(type(section), f"<{type(section).__name__}>"), False

    def add(self, key: str, parsed: bool) -> None:
        self.keys.add(key)
        if parsed:
            self.parsed_keys.add(key)

    @contextlib.contextmanager
    def active(self) -> Iterator[Recorder]:
        recorder = self
        base_init, base_validate, base_dump = Section.__init__, Section.model_validate.__func__, Section.model_dump

        def getattribute(self: Section, name: str) -> Any:
            if not recorder._validating and name in LEAF_FIELDS.get(type(self), ()):
                path, parsed = recorder.path_of(self)
                recorder.add(f"{path}.{name}" if path else name, parsed)
            return object.__getattribute__(self, name)

        def init(self: Section, /, **data: Any) -> None:
            recorder._validating += 1
            try:
                base_init(self, **data)
            finally:
                recorder._validating -= 1

        def model_validate(cls: type[Section], *args: Any, **kwargs: Any) -> Section:
            recorder._validating += 1
            try:
                made = base_validate(cls, *args, **kwargs)
            finally:
                recorder._validating -= 1
            if isinstance(made, ParamsConfig):  # parsed from params.yaml (params_file.parse_params)
                recorder._roots.append(made)
                _tree_paths(made, "", recorder._known)
            return made

        def model_dump(self: Section, *args: Any, **kwargs: Any) -> dict[str, Any]:
            if not recorder._validating:
                path, parsed = recorder.path_of(self)
                exclude = kwargs.get("exclude")
                if path and isinstance(exclude, (set, frozenset, list, tuple)):  # a dump of some fields: those
                    for name in type(self).model_fields:
                        if name not in exclude:
                            recorder.add(f"{path}.{name}", parsed)
                elif path:
                    recorder.add(path, parsed)
                else:
                    recorder.whole_dumps += 1
            return base_dump(self, *args, **kwargs)

        patches = {"__getattribute__": getattribute, "__init__": init, "model_validate": classmethod(model_validate),
                   "model_dump": model_dump}
        assert not set(patches) & set(vars(Section)), "Section defines a patched name itself; restore would drop it"
        for name, value in patches.items():
            setattr(Section, name, value)
        try:
            yield self
        finally:
            for name in patches:
                delattr(Section, name)


# -- dvc.yaml -----------------------------------------------------------------------------------------------------
def declared_params(stage: str) -> set[str]:
    """The ``params:`` keys of ``stage`` in dvc.yaml, ``${item.variant}`` resolved to VARIANT (a matrix item) and
    ``${key}`` to RELEASE (an ``imports`` entry)."""
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    entries = raw.get("do", raw).get("params", [])
    assert all(isinstance(e, str) for e in entries), f"{stage}: only keys of params.yaml are handled: {entries}"
    resolved = {e.replace("${item.variant}", VARIANT).replace("${key}", RELEASE) for e in entries}
    assert not any("${" in e for e in resolved), f"{stage}: a params entry this test cannot resolve: {entries}"
    return resolved


def covers(outer: str, inner: str) -> bool:
    """``outer`` is ``inner`` or a section holding it."""
    return inner == outer or inner.startswith(outer + ".")


# -- running the stages -------------------------------------------------------------------------------------------
def _no_worker_pool(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a worker pool started: its reads would not be recorded; keep the worker counts at 1")


@pytest.fixture(scope="module")
def reads(tmp_path_factory) -> dict[str, Recorder]:
    """Run every stage in a tiny project; the recorder of each."""
    from port_files import write_port_checkpoint

    import hourglass.data.preprocess
    import hourglass.data.synthetic
    from pipeline import download, evaluate, import_weights, preprocess, report, train

    root = tmp_path_factory.mktemp("params-project")
    write_port_checkpoint(root / TINY["imports"][RELEASE]["path"])
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    runs = {
        "download": [(download.main, ["--no-progress"])],
        "preprocess": [(preprocess.main, ["--no-progress"])],
        "train": [(train.main, ["--variant", VARIANT, "--seed", str(SEED), "--out", f"models/{VARIANT}/seed-{SEED}"]),
                  (train.main, ["--variant", VARIANT, "--seed", str(SEED), "--out", "scratch/step", *STEP_RUN])],
        "evaluate": [(evaluate.main, ["--variant", VARIANT, "--seed", str(SEED), "--no-progress"])],
        "import": [(import_weights.main, ["--name", RELEASE])],
        "evaluate_import": [(evaluate.main, ["--variant", RELEASE, "--model", f"models/{RELEASE}", "--no-progress"])],
        "report": [(report.main, [])],
    }
    out: dict[str, Recorder] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("HOURGLASS_ANCHOR_DATA", raising=False)
        mp.delenv("HOURGLASS_PARENT_RUN_ID", raising=False)
        for module in (hourglass.data.synthetic, hourglass.data.preprocess):
            mp.setattr(module, "ordered_map", _no_worker_pool)
        for stage, calls in runs.items():
            recorder = out[stage] = Recorder()
            for main, argv in calls:
                started = time.perf_counter()
                with recorder.active():
                    code = main(argv)
                assert code == 0, f"{stage}: {main.__module__}.main({argv}) exited {code}"
                print(f"{stage} {argv}: {time.perf_counter() - started:.1f} s, {len(recorder.keys)} keys")
    return out


STAGES = ("download", "preprocess", "train", "evaluate", "import", "evaluate_import", "report")


def test_every_stage_of_dvc_yaml_is_checked():
    assert set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]) == set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_every_key_read_is_declared(reads, stage):
    declared, allowed = declared_params(stage), UNDECLARED.get(stage, {})
    undeclared = sorted(k for k in reads[stage].keys
                        if not any(covers(d, k) for d in declared) and not any(covers(a, k) for a in allowed))
    assert not undeclared, f"{stage} reads params that dvc.yaml does not declare for it: {undeclared}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_declared_key_is_read(reads, stage):
    keys = reads[stage].keys
    unread = sorted(d for d in declared_params(stage) if not any(covers(d, k) or covers(k, d) for k in keys))
    assert not unread, f"{stage}: dvc.yaml declares params the stage never reads: {unread}"


@pytest.mark.parametrize("stage", STAGES)
def test_the_allow_list_is_current(reads, stage):
    """An allowed undeclared key is still read and still undeclared (else its entry goes)."""
    declared = declared_params(stage)
    for key in UNDECLARED.get(stage, {}):
        assert any(covers(key, k) for k in reads[stage].keys), f"{stage}: allowed {key!r} is no longer read"
        assert not any(covers(d, key) for d in declared), f"{stage}: allowed {key!r} is declared now"


@pytest.mark.parametrize("stage", sorted(ONLY_FROM_COPIES))
def test_allowed_keys_not_read_from_params_yaml(reads, stage):
    assert all(key in UNDECLARED[stage] for key in ONLY_FROM_COPIES[stage])
    direct = sorted(k for k in reads[stage].parsed_keys if any(covers(a, k) for a in ONLY_FROM_COPIES[stage]))
    assert not direct, f"{stage} reads these from params.yaml's own config, not the checkpoint's: {direct}"


def test_whole_config_dumps_are_the_known_ones(reads):
    dumping = {stage for stage, recorder in reads.items() if recorder.whole_dumps}
    assert dumping == set(WHOLE_CONFIG_DUMPS)


def test_recorder_names_copies_and_variants():
    """A copy is named by its class's place, a variant by its name; validation reads nothing; dumps read all."""
    from hourglass.config.params_file import parse_params
    from hourglass.train.run_config import resolve_variant

    recorder = Recorder()
    with recorder.active():
        config = parse_params(merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY))
        assert recorder.keys == set()
        resolved = resolve_variant(config, VARIANT)
        _ = resolved.model.stacks, config.download.root, config.sweep
    from hourglass.config import VariantConfig

    variant = {f"train.variants.{VARIANT}.{name}" for name in VariantConfig.model_fields}  # each field it may set
    assert recorder.keys == {*variant, "model", "model.stacks", "download.root", "sweep"}
    assert recorder.parsed_keys == {*variant, "download.root", "sweep"}  # model: copies
    assert not {"__getattribute__", "__init__", "model_validate", "model_dump"} & set(vars(Section))
