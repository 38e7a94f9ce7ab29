"""Runnable studies of gradopt's optimizers; `python -m experiments.demo` runs them all."""
