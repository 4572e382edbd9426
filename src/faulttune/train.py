"""Public entry point of training (the Snakemake rule `train` calls `train_experiment`).

    train_experiment(example_paths, model, out_dir, config) -> None

`example_paths`: masks parquet files (docs/CONTRACTS.md "Training examples"; a CCT experiment
gets its sft file and its cct file, each row's `kind` says what it is); `model`: a registry name,
hub id or folder; `out_dir`: results/{run}/models/{experiment}/; `config`: a `TrainConfig`
(`TrainConfig.from_dict` maps YAML keys 1:1 and rejects unknown ones). The implementation lives
in `faulttune.training`.
"""

from faulttune.training.config import TrainConfig, lr_at
from faulttune.training.loop import train_experiment

__all__ = ["TrainConfig", "lr_at", "train_experiment"]
