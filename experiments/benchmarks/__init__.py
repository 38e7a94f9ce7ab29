"""Benchmark of gradopt against optax and torch.optim: ``python -m experiments.benchmarks``."""
