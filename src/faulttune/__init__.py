"""faulttune: fault-aware fine-tuning of code LLMs (CCT, FGit, IterPref) as a Snakemake workflow."""

__version__ = "0.1.0"
