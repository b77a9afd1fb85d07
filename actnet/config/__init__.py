"""Configuration: frozen dataclasses, the only place defaults live.

Each component receives only its own slice (an :class:`EncodeConfig` for the transcoder, a :class:`ShardConfig` for
the shard writer, a :class:`LoaderConfig` for the input pipeline ...); only the orchestration (``prepare``,
``Trainer``, ``evaluate``) sees a whole :class:`PrepareOptions` or :class:`RunConfig`. Cross-field checks live in
``__post_init__`` and their messages name the command-line flag or config key, so the CLI prints them as they are.
Closed sets of values are :class:`Choice` enums, declared once: the config holds their string value, the CLI offers
the enum. The package's modules: :mod:`~actnet.config.choices` (the enums), :mod:`~actnet.config.prepare` (what
``actnet prepare`` reads) and :mod:`~actnet.config.run` (what ``actnet train``/``evaluate`` read); every name is
also importable from ``actnet.config``. Recipes, ``--set`` overrides and plain-data conversion live in
:mod:`actnet.recipes`.
"""

from actnet.config.choices import (  # noqa: F401
    CODEC_EXTENSION,
    DEFAULT_QUALITY,
    Choice,
    Codec,
    Device,
    Engine,
    HmdbPool,
    Interpolation,
    Negatives,
    Optimizer,
    Precision,
    SmallVideos,
    TeacherMode,
    Teaching,
    Verify,
)
from actnet.config.prepare import (  # noqa: F401
    EncodeConfig,
    PrepareOptions,
    ShardConfig,
    SyntheticConfig,
)
from actnet.config.run import (  # noqa: F401
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    ClipConfig,
    DataConfig,
    EvalConfig,
    LoaderConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    OptimizersConfig,
    RunConfig,
    TrainConfig,
)

__all__ = [
    "Choice",
    "Codec",
    "Verify",
    "SmallVideos",
    "Device",
    "Engine",
    "Teaching",
    "Negatives",
    "TeacherMode",
    "Optimizer",
    "Precision",
    "Interpolation",
    "HmdbPool",
    "CODEC_EXTENSION",
    "DEFAULT_QUALITY",
    "EncodeConfig",
    "ShardConfig",
    "SyntheticConfig",
    "PrepareOptions",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ClipConfig",
    "AugmentConfig",
    "LoaderConfig",
    "DataConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "OptimizersConfig",
    "TrainConfig",
    "EvalConfig",
    "RunConfig",
]
