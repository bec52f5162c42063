"""The whole params.yaml: one section per stage, the dataset choice, the sweep and its seeds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hourglass.config.data import DownloadConfig, PreprocessConfig, SyntheticConfig
from hourglass.config.operations import FlowsConfig, ImportConfig, MlflowConfig, ReportConfig
from hourglass.config.section import Section, _check_names
from hourglass.config.training import (
    VARIANT_SECTIONS,
    AugmentConfig,
    ModelConfig,
    TargetConfig,
    TrainConfig,
)

if TYPE_CHECKING:
    from hourglass.dataset_card import DatasetCard


def _overridden(section: Section, changes: dict[str, Any]) -> Section:
    """``section`` with ``changes``, validated as the section is. Built from a copy: a dump of the copy is not a read
    of the parsed section (tests/test_dvc_params.py records which params keys each stage reads)."""
    extra = {key: value for key, value in changes.items() if key not in type(section).model_fields}
    return type(section).model_validate({**section.model_copy(update=changes).model_dump(), **extra})


class ParamsConfig(Section):
    """The whole params.yaml: one section per stage, plus the dataset choice and the ablation sweep."""

    # The dataset card's name: datasets/<dataset>.yaml (mpii, flic, synthetic, synthetic_flic, or a user's own).
    dataset: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # The training seeds the sweep trains: dvc.yaml's train/evaluate stages are a matrix of sweep x seeds, and a
    # run's own seed comes from its command (``pipeline.train --seed N``; by hand the default is the first one).
    seeds: tuple[Annotated[int, Field(ge=0, strict=True)], ...] = Field(min_length=1)
    # The variants (names in train.variants) that dvc.yaml trains, evaluates and reports: its foreach list.
    sweep: tuple[str, ...]
    # Released weights scored beside the sweep (name -> the checkpoint), into models/<name>/: dvc.yaml's import and
    # evaluate_import stages iterate over it.
    imports: dict[str, ImportConfig]
    model: ModelConfig
    targets: TargetConfig
    download: DownloadConfig
    augment: AugmentConfig
    preprocess: PreprocessConfig
    train: TrainConfig
    synthetic: SyntheticConfig
    mlflow: MlflowConfig
    flows: FlowsConfig
    report: ReportConfig

    # Where this project's cards are: ``datasets/`` beside the params file it was read from (the validation
    # context's ``card_dirs``, set by hourglass.config.params_file), so a run started from another directory finds them.
    _card_dirs: tuple[Path, ...] = PrivateAttr(default=())

    @field_validator("dataset")
    @classmethod
    def _card_exists(cls, value: str, info: ValidationInfo) -> str:
        from hourglass.dataset_card import CardError, card_path, card_search  # local: the card module imports config

        try:
            card_path(value, card_search((info.context or {}).get("card_dirs", ())))
        except CardError as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _remember_card_dirs(self, info: ValidationInfo) -> ParamsConfig:
        self._card_dirs = tuple(Path(p) for p in (info.context or {}).get("card_dirs", ()))
        return self

    @property
    def card_search(self) -> tuple[Path, ...]:
        """The folders this run's cards are looked up in, first match wins."""
        from hourglass.dataset_card import card_search

        return card_search(self._card_dirs)

    def card(self) -> DatasetCard:
        """The run's dataset card (``datasets/<dataset>.yaml``)."""
        from hourglass.dataset_card import load_card

        return load_card(self.dataset, self.card_search)

    def with_variant(self, name: str, sections: tuple[str, ...] = VARIANT_SECTIONS) -> ParamsConfig:
        """These params with variant ``name``'s overrides of ``sections`` applied, each changed section validated
        again (the evaluate stage takes only ``targets`` and ``train``: its network is the checkpoint's)."""
        update: dict[str, Any] = {}
        for section, changes in self.train.variants[name].overrides().items():
            if section not in sections:
                continue
            current = getattr(self, section)
            update[section] = _overridden(current, changes)
        return self.model_copy(update=update)

    @model_validator(mode="after")
    def _variants_apply(self) -> ParamsConfig:
        for name, variant in self.train.variants.items():
            for section, changes in variant.overrides().items():
                current = getattr(self, section)
                try:
                    _overridden(current, changes)
                except ValidationError as err:
                    where = f"train.variants.{name}.{section}"
                    lines = [f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
                    raise ValueError("; ".join(lines)) from None
        return self

    @model_validator(mode="after")
    def _sweep_names_variants(self) -> ParamsConfig:
        known = sorted(self.train.variants)
        unknown = [name for name in self.sweep if name not in self.train.variants]
        if unknown:
            raise ValueError(f"sweep: {unknown} not in train.variants (defined: {known})")
        if len(set(self.sweep)) != len(self.sweep):
            raise ValueError(f"sweep: names must be unique, got {list(self.sweep)}")
        _check_names("imports", self.imports)
        clash = sorted(set(self.imports) & set(self.train.variants))
        if clash:
            raise ValueError(f"imports: {clash} also name train.variants; both would write models/<name>/")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: must be unique, got {list(self.seeds)}")
        if self.sweep and self.flows.champion_variant not in self.sweep:
            raise ValueError(f"flows.champion_variant: {self.flows.champion_variant!r} is not in sweep "
                             f"{list(self.sweep)}; the champion must be a variant the pipeline trains")
        return self
