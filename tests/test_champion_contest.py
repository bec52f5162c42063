"""The fair champion contest (hourglass.tracking: champion, candidate, registry, rescore, champion_log) on
real parts: a real MLflow SQLite registry, tiny hourglass networks registered as training registers them (the pose
pyfunc with its checkpoint, version tags), real synthetic people preprocessed as the pipeline does, the evaluate
stage's own code scoring them.

How a model is made "clearly better" without training: a network's predictions depend only on each person's crop
(centre and scale), never on the joints annotated for that person, so the tests write validation annotations whose
joints are where a chosen network predicts them. A network whose heatmap layers are zero ("flat") predicts one fixed
point per crop; moving the joints of the first people there makes it right on exactly those people, and moving other
people's joints to a random network's predictions makes that one right on them instead. The crops never change, so
every network predicts the same points on every version of the split, and only the ground truth (and its digest)
moves.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from shipped import write_params

from hourglass.config import ParamsConfig
from hourglass.config.params_file import load_params
from hourglass.data.preprocess import preprocess
from hourglass.data.synthetic import generate_dataset
from hourglass.evaluation.split_digest import split_digest
from hourglass.evaluation.stage import evaluate
from hourglass.io.annotations import read_annotations, write_annotations
from hourglass.io.checkpoint import save_checkpoint
from hourglass.io.eval_files import read_predictions
from hourglass.model import StackedHourglass, create_model
from hourglass.tracking.candidate import ChampionError
from hourglass.tracking.champion import decide_champion
from hourglass.tracking.champion_log import ChampionLogError, append_record, read_records
from hourglass.tracking.champion_record import record_markdown
from hourglass.tracking.registry import Difference, RegistryError, contest_rule
from hourglass.tracking.runs import RunTracker
from hourglass.tracking.store import registered_name

pytestmark = pytest.mark.usefixtures("one_thread")

PARAMS = """\
dataset: synthetic
seeds: [0]
sweep: [tiny]
model: {stacks: 1, features: 16, input_res: 64}
synthetic: {train_images: 1, valid_images: 12, workers: 1}
preprocess: {workers: 1}
train: {steps_per_epoch: null, val_batch_size: 16, workers: 0, precision: fp32, channels_last: false,
        variants: {tiny: {}}}
mlflow: {enabled: true, experiment: contest, registered_model: hg, log_model: true, system_metrics: false,
         sweep: null}
flows: {champion_variant: tiny, champion_metric: null, higher_is_better: true, min_improvement: 0.5,
        confidence: 0.95}
"""
NAME = "hg-synthetic"
LOG = logging.getLogger("test-champion-contest")


def _network(kind: str) -> StackedHourglass:
    """``flat``: zero heatmap layers (one fixed point per crop); ``random<seed>``: a freshly initialised network."""
    torch.manual_seed(int(kind[6:]) if kind.startswith("random") else 0)
    network = create_model(stacks=1, features=16, joints=16)
    if kind == "flat":
        with torch.no_grad():
            for layer in network.heatmaps:
                layer.weight.zero_()
                layer.bias.zero_()
    return network.eval()


def _save(network: StackedHourglass, params: ParamsConfig, path: Path) -> Path:
    """The network as the training stage saves its checkpoint."""
    save_checkpoint({"model": network.state_dict(), "config": params.model_dump(mode="json"), "variant": "tiny",
                     "epoch": 1}, path)
    return path


def _move_joints(valid: Path, groups: list[tuple[range, np.ndarray]]) -> None:
    """Rewrite ``valid`` with each group's people's annotated joints at ``preds`` (0-based) of those people."""
    table = read_annotations(valid)
    joints = table.joints.copy()
    for people, preds in groups:
        rows = np.asarray(people)
        target = preds[rows]
        movable = table.annotated[rows] & (target + 1.0 > 0).all(axis=-1)  # stays annotated once written
        joints[rows] = np.where(movable[..., None], target, joints[rows])
    write_annotations(valid, dataclasses.replace(table, joints=joints))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Synthetic people in three versions of the validation split (original, A, B) as raw + processed data
    folders, and each network's predictions on the (shared) crops."""
    root = tmp_path_factory.mktemp("contest-world")
    params_file = write_params(root / "params.yaml", PARAMS)
    params = load_params(params_file)
    original = root / "original"
    generate_dataset(params.synthetic, original / "raw", progress=False)
    preprocess(original / "raw", original / "processed", params, progress=False)
    gt = original / "raw" / "annot" / "valid.h5"
    preds = {}
    for kind in ("flat", "random0", "random1"):
        ckpt = _save(_network(kind), params, root / kind / "checkpoint.pt")
        evaluate(params, "tiny", ckpt, original / "processed", gt, root / kind / "eval", progress=False,
                 submission=False)
        preds[kind] = read_predictions(root / kind / "eval" / "preds.h5")
    people = len(preds["flat"])
    splits = {"original": original}
    # A: the flat network is right on 20 of the 34 people; B: on 10 of them, and random0 on 11 others
    for name, groups in (("A", [(range(20), preds["flat"])]),
                         ("B", [(range(10), preds["flat"]), (range(10, 21), preds["random0"])])):
        folder = root / name
        shutil.copytree(original / "raw", folder / "raw")
        _move_joints(folder / "raw" / "annot" / "valid.h5", groups)
        preprocess(folder / "raw", folder / "processed", params, progress=False)
        splits[name] = folder
    return {"params_file": params_file, "params": params, "splits": splits, "people": people}


class Repo:
    """A project checkout as the contest sees it: params.yaml, data/ of one split version, models/, reports/."""

    def __init__(self, root: Path, world: dict, uri: str) -> None:
        self.root, self.world, self.uri = root, world, uri
        self.params: ParamsConfig = world["params"]
        self.client = MlflowClient(tracking_uri=uri)
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(world["params_file"], root / "params.yaml")

    @property
    def data(self) -> Path:
        return self.root / "data" / "processed" / "synthetic"

    @property
    def gt(self) -> Path:
        return self.root / "data" / "raw" / "synthetic" / "annot" / "valid.h5"

    @property
    def seed_dir(self) -> Path:
        return self.root / "models" / "tiny" / "seed-0"

    def use_split(self, name: str) -> str:
        """Put split version ``name`` in data/ (as a new download + preprocess would); returns its digest."""
        for kind in ("raw", "processed"):
            target = self.root / "data" / kind / "synthetic"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(self.world["splits"][name] / kind, target)
        return split_digest(self.data, self.gt, self.params)

    def train(self, kind: str) -> str:
        """What train@tiny-0 and evaluate@tiny-0 leave: checkpoint, registered version (its number returned),
        mlflow.json, and the evaluate stage's eval/ on the split in data/ (logged to the run)."""
        network = _network(kind)
        _save(network, self.params, self.seed_dir / "checkpoint.pt")
        tracker = RunTracker(self.seed_dir, self.params.mlflow, run_name=f"tiny/{kind}", params={},
                             tracking_uri=self.uri)
        tracker.log_model(network, 64, registered_name(self.params), config=self.params.model_dump(mode="json"),
                          variant="tiny", epoch=1)
        tracker.finish({})
        self.evaluate_stage()
        return json.loads((self.seed_dir / "mlflow.json").read_text())["version"]

    def evaluate_stage(self) -> dict:
        return evaluate(self.params, "tiny", self.seed_dir / "checkpoint.pt", self.data, self.gt,
                        self.seed_dir / "eval", progress=False, seed=0)

    def evaluate_version(self, version: str, out: Path) -> float:
        """The evaluate code's Mean of the registered version's own checkpoint on the split in data/."""
        from hourglass.weights.source import resolve_checkpoint

        out.mkdir(parents=True)
        ckpt = resolve_checkpoint(f"models:/{NAME}/{version}", out, self.uri)
        return evaluate(self.params, "tiny", ckpt, self.data, self.gt, out / "eval", progress=False,
                        submission=False)["final"]["Mean"]

    def promote(self):
        return decide_champion(self.root, self.params, LOG)

    def champion(self) -> str | None:
        aliases = self.client.get_registered_model(NAME).aliases
        return str(aliases["champion"]) if "champion" in aliases else None

    def all_tags(self) -> dict:
        """Every version's tags and its run's tags, and the aliases: what a quiet run must leave as it was."""
        versions = self.client.search_model_versions(f"name = '{NAME}'")
        return {"aliases": dict(self.client.get_registered_model(NAME).aliases),
                **{mv.version: (dict(mv.tags), dict(self.client.get_run(mv.run_id).data.tags)) for mv in versions}}


@pytest.fixture
def repo(tmp_path: Path, mlflow_store: str, world: dict) -> Repo:
    return Repo(tmp_path / "repo", world, mlflow_store)


def test_a_fair_contest_over_a_changing_split(repo: Repo, tmp_path: Path) -> None:
    """One retraining history (about 30 s: four registered models, each scored by the evaluate code, one re-scored
    champion and the test's own evaluations): the first model is promoted; a quiet run changes nothing; a clearly
    better model wins against the champion's stored score; the split changes, the champion is re-scored on it and a
    candidate that is better by more than the margin but not distinguishable is kept; the log keeps every record."""
    digest_a = repo.use_split("A")
    first = repo.train("random1")
    outcome = repo.promote()
    assert outcome.decision is not None and outcome.decision.promoted and repo.champion() == first
    assert outcome.record["champion_version"] is None and outcome.record["difference"] is None
    first_score_a = json.loads((repo.seed_dir / "eval" / "metrics.json").read_text())["final"]["Mean"]
    assert outcome.record["candidate_score"] == pytest.approx(first_score_a)
    history = [outcome.record]

    # Nothing new: no contest, no tag and no alias changes, a note in the history.
    before = repo.all_tags()
    quiet = repo.promote()
    assert quiet.decision is None and quiet.record["kind"] == "nothing new"
    assert "already holds @champion" in quiet.record["reason"] and quiet.record["serving_version"] == first
    assert repo.all_tags() == before
    history.append(quiet.record)
    assert "nothing new" in quiet.summary() and "no contest" in record_markdown(quiet.record)

    # A clearly better model: the champion's predictions stored when it competed on split A are reused.
    better = repo.train("flat")
    outcome = repo.promote()
    record = outcome.record
    assert record["decision"] == "promoted" and repo.champion() == better
    assert record["champion_version"] == first and record["champion_rescored"] is False
    assert record["split_digest"] == digest_a
    assert record["champion_score"] == pytest.approx(first_score_a)
    assert record["candidate_score"] == pytest.approx(repo.evaluate_version(better, tmp_path / "v-better-A"))
    assert record["candidate_score"] > 30.0 > 5.0 > record["champion_score"]
    assert record["difference"]["low"] > 0 and record["difference"]["people"] == repo.world["people"]
    assert "beats the champion" in record["reason"]
    first_tags = repo.client.get_model_version(NAME, first).tags
    assert first_tags["champion_decision"] == "promoted"  # its own promotion, never rewritten as "kept"
    history.append(record)

    # The split changes (other people are labelled differently): the champion is evaluated again on it.
    digest_b = repo.use_split("B")
    assert digest_b != digest_a
    serving_tags = dict(repo.client.get_model_version(NAME, better).tags)
    candidate = repo.train("random0")
    outcome = repo.promote()
    record = outcome.record
    assert record["decision"] == "kept" and repo.champion() == better
    assert record["champion_version"] == better and record["champion_rescored"] is True
    assert record["split_digest"] == digest_b
    champion_now = repo.evaluate_version(better, tmp_path / "v-better-B")
    assert record["champion_score"] == pytest.approx(champion_now)
    assert record["candidate_score"] == pytest.approx(repo.evaluate_version(candidate, tmp_path / "v-cand-B"))
    assert record["champion_score"] < 40.0 and record["champion_score"] != pytest.approx(history[2]["candidate_score"])
    gain = record["candidate_score"] - record["champion_score"]
    assert gain >= 0.5 and record["difference"]["low"] < 0 < record["difference"]["high"]
    assert record["reason"].startswith("not distinguishable: difference +")
    # The serving version got its score on the new split recorded, and no decision tag of its own changed.
    after = repo.client.get_model_version(NAME, better).tags
    assert after["contest.split_digest"] == digest_b != serving_tags["contest.split_digest"]
    assert float(after["contest.score"]) == pytest.approx(champion_now)
    assert {k: v for k, v in after.items() if k.startswith("champion_")} == {
        k: v for k, v in serving_tags.items() if k.startswith("champion_")}
    candidate_tags = repo.client.get_model_version(NAME, candidate).tags
    assert candidate_tags["champion_decision"] == "kept" and candidate_tags["champion_split_digest"] == digest_b
    assert candidate_tags["champion_reason"] == record["reason"]
    history.append(record)

    # Run again with nothing new: this candidate already competed against this champion on this split.
    before = repo.all_tags()
    quiet = repo.promote()
    assert quiet.decision is None and "already competed against version" in quiet.record["reason"]
    assert repo.all_tags() == before
    history.append(quiet.record)
    assert read_records(repo.root) == json.loads(json.dumps(history))  # every earlier record as it was written


def test_models_of_another_card_never_compete(repo: Repo) -> None:
    """A champion whose card tags differ (another dataset's card) is refused with both versions named, and nothing
    is tagged or moved; so is one that cannot be scored on the split; a candidate registered under another name, or
    trained on another card, is refused too."""
    repo.use_split("A")
    run_id = repo.client.create_run("0").info.run_id
    repo.client.create_registered_model(NAME)
    other = repo.client.create_model_version(NAME, source=f"runs:/{run_id}/model", run_id=run_id).version
    for key, value in {"dataset_card": "0123456789ab", "keypoints": "head,hand", "metric": "PCK@0.2"}.items():
        repo.client.set_model_version_tag(NAME, other, key, value)
    repo.client.set_registered_model_alias(NAME, "champion", other)
    candidate = repo.train("flat")
    before = repo.all_tags()
    with pytest.raises(RegistryError, match=rf"candidate version {candidate} \(card \w+, 16 keypoints, PCKh@0.5\) "
                                            rf"and champion version {other} \(card 0123456789ab, 2 keypoints"):
        repo.promote()
    assert repo.all_tags() == before and read_records(repo.root) == []
    # Of the same card, but with no model to score on this split (no checkpoint, no stored predictions): refused.
    for key in ("dataset_card", "keypoints", "metric"):
        repo.client.set_model_version_tag(NAME, other, key, repo.client.get_model_version(NAME, candidate).tags[key])
    before = repo.all_tags()
    with pytest.raises(ChampionError, match=rf"'hg-synthetic' champion version {other} cannot be scored on the "
                                            r"current validation split"):
        repo.promote()
    assert repo.all_tags() == before and read_records(repo.root) == []

    mlflow_json = repo.seed_dir / "mlflow.json"
    record = json.loads(mlflow_json.read_text())
    mlflow_json.write_text(json.dumps({**record, "registered_model": "hg"}))
    with pytest.raises(ChampionError, match=r"seed-0/mlflow.json: the model was registered as 'hg', but "
                                            r"runs on this dataset register as 'hg-synthetic'"):
        repo.promote()
    mlflow_json.write_text(json.dumps(record))
    repo.client.set_model_version_tag(NAME, candidate, "dataset_card", "fedcba987654")
    with pytest.raises(ChampionError, match=r"trained on dataset_card 'fedcba987654', but the params' card"):
        repo.promote()


def test_a_stale_candidate_evaluation_is_refused(repo: Repo) -> None:
    """The candidate's eval/ must be of the split as it is now: after the split changes, evaluate again."""
    repo.use_split("A")
    repo.train("random1")
    repo.use_split("B")
    with pytest.raises(ChampionError, match=r"eval/metrics.json: the candidate was scored on validation split "
                                            r"\w{12}, but the split is now \w{12}; evaluate it again"):
        repo.promote()
    repo.evaluate_stage()
    assert repo.promote().decision.promoted


def test_split_digest_follows_the_validation_people_not_the_training_ones(world: dict, tmp_path: Path) -> None:
    params = world["params"]
    original = world["splits"]["original"]
    digest = split_digest(original / "processed", original / "raw" / "annot" / "valid.h5", params)
    assert digest != split_digest(world["splits"]["A"] / "processed",
                                  world["splits"]["A"] / "raw" / "annot" / "valid.h5", params)
    noflip = params.model_copy(update={"targets": params.targets.model_copy(update={"flip_test": False})})
    assert digest != split_digest(original / "processed", original / "raw" / "annot" / "valid.h5", noflip)
    # new training people (a changed train.h5, preprocessed again) leave the validation split as it was
    grown = tmp_path / "grown"
    shutil.copytree(original / "raw", grown / "raw")
    train = read_annotations(grown / "raw" / "annot" / "train.h5")
    write_annotations(grown / "raw" / "annot" / "train.h5", dataclasses.replace(train, scale=train.scale * 1.1))
    preprocess(grown / "raw", grown / "processed", params, progress=False)
    assert split_digest(grown / "processed", grown / "raw" / "annot" / "valid.h5", params) == digest
    # a changed validation image changes it
    image = grown / "raw" / "images" / str(read_annotations(grown / "raw" / "annot" / "valid.h5").imgname[0])
    image.write_bytes(image.read_bytes() + b"\0")
    assert split_digest(grown / "processed", grown / "raw" / "annot" / "valid.h5", params) != digest


def _interval(estimate: float, low: float, high: float) -> Difference:
    return Difference(estimate, low, high, 0.95, 40)


@pytest.mark.parametrize(("candidate", "champion", "interval", "higher", "promoted", "reason"), [
    (60.3, 60.0, (0.3, -1.2, 1.8), True, False, "not distinguishable: difference +0.30 [-1.20, 1.80] at 95 %"),
    (62.0, 60.0, (2.0, 0.5, 3.5), True, True, "beats the champion by at least flows.min_improvement 0.5"),
    (60.4, 60.0, (0.4, 0.1, 0.7), True, False, "gain 0.40 below flows.min_improvement 0.5"),
    (58.0, 60.0, (-2.0, -3.0, -1.0), True, False, "worse than the champion"),
    (60.0, 60.0, (0.0, 0.0, 0.0), True, False, "ties the champion"),
    (1.0, 2.0, (-1.0, -1.5, -0.6), False, True, "beats the champion"),  # lower is better: a clear drop wins
    (1.0, 2.0, (-1.0, -1.5, 0.2), False, False, "not distinguishable"),
    (float("nan"), 60.0, (math.nan, math.nan, math.nan), True, False, "not a finite number"),
    (61.0, 60.0, (1.0, math.nan, math.nan), True, False, "not distinguishable"),
])
def test_contest_rule(candidate: float, champion: float, interval: tuple, higher: bool, promoted: bool,
                      reason: str) -> None:
    won, why = contest_rule(candidate, champion, _interval(*interval), metric="eval/pckh/Mean",
                            higher_is_better=higher, min_improvement=0.5)
    assert won is promoted and reason in why


def test_no_champion_promotes() -> None:
    assert contest_rule(12.0, None, None, metric="m", higher_is_better=True, min_improvement=0.5) == (
        True, "no model held the alias yet")


def test_log_appends_and_reads_the_single_decision_of_old(tmp_path: Path) -> None:
    assert read_records(tmp_path) == []
    (tmp_path / "reports").mkdir()
    old = {"model": "hourglass", "alias": "champion", "promoted": True, "candidate_version": "4",
           "reason": "no model held the alias yet", "decided_at": "2025-01-01T00:00:00+00:00"}
    (tmp_path / "reports" / "champion.json").write_text(json.dumps(old))
    assert read_records(tmp_path) == [{"kind": "contest", "decision": "promoted", **old}]
    rollback = {"kind": "rollback", "model": "hourglass", "alias": "champion", "serving_version": "3",
                "reason": "by hand", "decided_at": "2025-01-02T00:00:00+00:00", "score": math.nan}
    records = append_record(tmp_path, rollback)
    assert records == read_records(tmp_path) and len(records) == 2
    assert records[0] == {"kind": "contest", "decision": "promoted", **old} and records[1]["score"] is None
    assert json.loads((tmp_path / "reports" / "champion.json").read_text())["contests"] == records
    with pytest.raises(ChampionLogError, match="record kind 'won' is not one of"):
        append_record(tmp_path, {**rollback, "kind": "won"})
    with pytest.raises(ChampionLogError, match="needs 'decided_at'"):
        append_record(tmp_path, {**rollback, "decided_at": ""})
    (tmp_path / "reports" / "champion.json").write_text("[1, 2]")
    with pytest.raises(ChampionLogError, match=r"champion.json: expected \{\"contests\""):
        read_records(tmp_path)

