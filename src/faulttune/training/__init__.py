"""Training: one loop for SFT, CCT, FGit and the DPO family (see loop.py); public entry point
`faulttune.train.train_experiment`."""
