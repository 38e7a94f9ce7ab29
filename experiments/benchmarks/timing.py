"""Timing plumbing: interleaved repetitions, compile time, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import jax
import numpy as np


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def summary(seconds: list[float]) -> dict:
    """Median, quartiles, min and max of a list of durations, in milliseconds."""
    ms = np.asarray(seconds) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "q1_ms": float(np.percentile(ms, 25)),
        "q3_ms": float(np.percentile(ms, 75)),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "reps": len(seconds),
    }


def interleaved(runners: dict[str, Callable[[], object]], *, reps: int, warmup: int = 2) -> dict:
    """Time each runner ``reps`` times, round-robin, after ``warmup`` calls each.

    A runner performs one step and blocks until its results are ready. The
    order of the runners rotates from one repetition to the next, so slow
    phases of a shared machine fall on every implementation alike.
    """
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
    return {name: summary(t) for name, t in times.items()}


def compile_seconds(fn: Callable, *args, donate_argnums=()) -> tuple[float, Callable]:
    """Wall time of ``jax.jit(fn).lower(*args).compile()`` and the compiled program."""
    start = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=donate_argnums).lower(*args).compile()
    return time.perf_counter() - start, compiled


class Stepper:
    """Runs a compiled ``step(params, batch, state) -> (params, state)`` on its own carry."""

    def __init__(self, compiled: Callable, params, batch, state):
        self.compiled = compiled
        self.params, self.batch, self.state = params, batch, state

    def __call__(self):
        self.params, self.state = self.compiled(self.params, self.batch, self.state)
        jax.block_until_ready((self.params, self.state))


def machine() -> dict:
    """CPU model, core count, platform and library versions."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "jax": jax.__version__}
    for module in ("jaxlib", "optax", "numpy", "torch"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_average_1min_at_start": load,
        "device": str(jax.devices()[0]),
        "platform": jax.devices()[0].platform,
        "versions": versions,
    }


def median(values: list[float]) -> float:
    return statistics.median(values)
