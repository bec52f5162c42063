"""The params.yaml schema: one validated config object, built once and passed down.

The schema holds types, bounds and meanings, never values: every key is required, so each setting has one home
(params.yaml, the CPU preset; the recipes in ``recipes/`` hold only what differs from it, see
:mod:`hourglass.config.recipes`) and a key left out is an error naming it, not a silent default. Every section
forbids unknown keys, so a typo fails loudly (:mod:`hourglass.config.params_file` reads the file and words the
errors).

The sections, by concern: :mod:`~hourglass.config.training` (model, targets, augment, train and its variants),
:mod:`~hourglass.config.data` (download, synthetic, preprocess), :mod:`~hourglass.config.operations` (mlflow, flows,
report, imports) and :mod:`~hourglass.config.params` (the whole file); their base is
:mod:`~hourglass.config.section`.
"""

from hourglass.config.data import (
    DownloadConfig,
    ExtractConfig,
    PreprocessConfig,
    SourceConfig,
    SyntheticConfig,
)
from hourglass.config.operations import PORT_PROJECT, FlowsConfig, ImportConfig, MlflowConfig, ReportConfig
from hourglass.config.params import ParamsConfig
from hourglass.config.section import Section
from hourglass.config.training import (
    NETWORK_KEYS,
    VARIANT_SECTIONS,
    AugmentConfig,
    ModelConfig,
    TargetConfig,
    TrainConfig,
    VariantConfig,
)

__all__ = [
    "NETWORK_KEYS", "PORT_PROJECT", "VARIANT_SECTIONS", "AugmentConfig", "DownloadConfig", "ExtractConfig",
    "FlowsConfig", "ImportConfig", "MlflowConfig", "ModelConfig", "ParamsConfig", "PreprocessConfig", "ReportConfig",
    "Section", "SourceConfig", "SyntheticConfig", "TargetConfig", "TrainConfig", "VariantConfig",
]
