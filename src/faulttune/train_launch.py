"""``python -m faulttune.train_launch SPEC.json``: one training run under ``accelerate launch``.

The ``train`` rule writes SPEC.json (examples, model, out_dir, the TrainConfig as a dict) and
starts ``accelerate launch --config_file config/accelerate/<ddp|fsdp|zero3>.yaml
--num_processes N -m faulttune.train_launch SPEC.json`` inside one (SLURM) job when
``train.num_processes > 1``; every process runs this module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from faulttune.train import TrainConfig, train_experiment


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m faulttune.train_launch SPEC.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        spec = json.load(f)
    config = TrainConfig.from_dict(spec["config"])
    train_experiment(spec["examples"], spec["model"], spec["out_dir"], config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
