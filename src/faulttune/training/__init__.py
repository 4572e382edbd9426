"""Training: one loop for SFT, CCT, FGit and the DPO family (see loop.py); public entry point
`faulttune.training.loop.train_experiment` (several processes: `faulttune.training.launch`)."""
