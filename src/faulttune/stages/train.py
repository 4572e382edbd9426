"""Rule of ``train.smk``: fine-tune the student for one experiment."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from faulttune.settings import TrainSettings
from faulttune.stages import set_threads

log = logging.getLogger("faulttune")


def train_config(settings: TrainSettings) -> Any:
    """The trainer's config of an experiment: its method parameters (user names), the train
    settings and the global batch (micro_batch_size x grad_accum x num_processes)."""
    from faulttune.training.config import TrainConfig

    return TrainConfig(
        method=settings.method, params=dict(settings.params), seed=settings.seed, lr=settings.lr,
        epochs=settings.epochs, max_steps=settings.max_steps, max_length=settings.max_length,
        warmup_ratio=settings.warmup_ratio, batch_size=settings.global_batch,
        micro_batch_size=settings.micro_batch_size, precision=settings.precision,
        gradient_checkpointing=settings.gradient_checkpointing, lora=settings.lora,
        save_every=settings.save_every)


def train(settings: TrainSettings, examples: Sequence[str], out_dir: str, threads: int = 1) -> None:
    """Fine-tune the student on the experiment's training examples. The run lives in the job's
    state folder (:mod:`faulttune.resume`), so a killed job resumes from its last checkpoint,
    and becomes ``out_dir`` when it completes."""
    from faulttune.resume import Resumable

    set_threads(threads)
    cfg = train_config(settings)
    log.info("training %s (%s) on %s; global batch %d = micro-batch %d x grad_accum %d x %d "
             "process(es)", settings.experiment, settings.method, list(examples),
             settings.global_batch, settings.micro_batch_size, settings.grad_accum,
             settings.num_processes)
    with Resumable(out_dir, settings) as job:
        work = str(job.state / "run")
        if settings.num_processes > 1:
            from faulttune.training.launch import launch

            launch(examples, settings.model, work, cfg, settings.num_processes,
                   settings.accelerate_config)
        else:
            from faulttune.training.loop import train_experiment

            train_experiment(list(examples), settings.model, work, cfg,
                             should_stop=lambda: job.stop_requested)
        job.publish(work)
