"""Training: one loop for every method of the registry (see loop.py); public entry point
`faulttune.training.loop.train_experiment` (several processes: `faulttune.training.launch`).

The two names the report needs without importing torch live here."""

BUDGET_FILE = "budget.json"  # training.budget: what a run trained on, in its model folder
MIN_STEPS = 20  # fewer optimiser steps hardly train: the trainer and the report warn
