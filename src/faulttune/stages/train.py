"""Rule of ``train.smk``: fine-tune the student for one experiment."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from faulttune.settings import TrainSettings
from faulttune.stages import set_threads

log = logging.getLogger("faulttune")


def train(settings: TrainSettings, examples: Sequence[str], out_dir: str, threads: int = 1,
          models: Mapping[str, str] | None = None) -> None:
    """Fine-tune the student on the experiment's training examples; ``models``: the folders of
    the models its method requires, by role. The run lives in the job's state folder
    (:mod:`faulttune.resume`), so a killed job resumes from its last checkpoint, and becomes
    ``out_dir`` when it completes."""
    from faulttune import methods
    from faulttune.resume import Resumable

    set_threads(threads)
    methods.load_plugins(settings.plugins)
    cfg = settings.config
    log.info("training %s (%s) on %s; global batch %d = micro-batch %d x grad_accum %d x %d "
             "process(es)", settings.experiment, cfg.method, list(examples), cfg.batch_size,
             cfg.micro_batch_size, settings.grad_accum, settings.num_processes)
    with Resumable(out_dir, settings) as job:
        work = str(job.state / "run")
        if settings.num_processes > 1:
            from faulttune.training.launch import launch

            launch(examples, settings.model, work, cfg, settings.num_processes,
                   settings.accelerate_config, models=models, plugins=settings.plugins)
        else:
            from faulttune.training.loop import train_experiment

            train_experiment(list(examples), settings.model, work, cfg, models=models,
                             should_stop=lambda: job.stop_requested)
        job.publish(work)
