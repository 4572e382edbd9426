"""Starting a training run: in this process, or several processes through ``accelerate launch``.

:func:`launch` writes SPEC.json (examples, model, out_dir, the TrainConfig as a dict, the models
the method requires) beside the
output folder and runs ``accelerate launch --config_file config/accelerate/<ddp|fsdp|zero3>.yaml
--num_processes N --main_process_port P -m faulttune.training.launch SPEC.json``; every process runs
:func:`main`. The ``train`` rule does this inside one (SLURM) job when ``train.num_processes > 1``.
On a machine without CUDA the processes train on the CPU with the gloo backend (that is how the
tests check that the process count does not change the loss).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from faulttune.training.config import TrainConfig
from faulttune.training.loop import train_experiment

log = logging.getLogger(__name__)
ACCELERATE_CONFIGS = Path(__file__).resolve().parents[3] / "config" / "accelerate"


def free_port() -> int:
    """A TCP port nobody listens on now: two runs on one node must not share the default 29500."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(examples: Sequence[str], model: str, out_dir: str, config: TrainConfig,
           num_processes: int, accelerate_config: str = "ddp",
           models: Mapping[str, str] | None = None, plugins: Sequence[str] = ()) -> None:
    """Train with ``num_processes`` processes (one per GPU); ``accelerate_config``: ddp, fsdp,
    zero3 (a file of config/accelerate/) or the path of an accelerate config file; ``models``:
    the models the method requires, by role; ``plugins``: where methods outside the package are
    defined (:func:`faulttune.methods.load_plugins`)."""
    config_file = Path(accelerate_config)
    if not config_file.is_file():
        config_file = ACCELERATE_CONFIGS / f"{accelerate_config}.yaml"
    spec = Path(out_dir).with_name(Path(out_dir).name + ".launch.json")
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({"examples": list(examples), "model": model, "out_dir": out_dir,
                                "config": config.to_dict(), "models": dict(models or {}),
                                "plugins": list(plugins)}))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(config_file), "--num_processes", str(num_processes),
               "--main_process_port", str(free_port()), "-m", "faulttune.training.launch", str(spec)]
    log.info("launching %s", " ".join(command))
    subprocess.run(command, check=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m faulttune.training.launch SPEC.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        spec = json.load(f)
    from faulttune.methods import load_plugins

    load_plugins(spec.get("plugins"))
    config = TrainConfig.from_dict(spec["config"])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    stop = {"requested": False}  # SLURM signals every process of the job at its time limit
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    train_experiment(spec["examples"], spec["model"], spec["out_dir"], config,
                     models=spec.get("models"), should_stop=lambda: stop["requested"])
    from accelerate import PartialState

    PartialState().destroy_process_group()  # a clean exit for every process
    return 0


if __name__ == "__main__":
    sys.exit(main())
