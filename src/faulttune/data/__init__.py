"""Benchmark and training-data loaders."""
