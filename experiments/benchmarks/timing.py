"""Timing plumbing: interleaved repetitions, compile time, what XLA compiled, the machine."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

import jax
import numpy as np

from experiments import common


def log(message: str) -> None:
    common.log("bench", message)


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


# An instruction of the entry computation: "%name = TYPE opcode(" (TYPE may be a tuple).
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%\S+\s*=\s*(.+?)\s+([\w-]+)\(")
_NOT_A_PASS = {"parameter", "tuple", "get-tuple-element", "bitcast", "constant", "copy-start"}


def array_passes(compiled) -> int:
    """Loops over arrays in the compiled program: entry instructions with a non-scalar result.

    On XLA:CPU each fusion (or unfused elementwise op) of the entry
    computation is one loop over its arrays; scalar work (step counters,
    bias corrections) and bookkeeping (parameters, tuples, bitcasts) are not
    counted.
    """
    text = compiled.as_text()
    entry = text[text.index("\nENTRY") :]
    entry = entry[: entry.index("\n}")]
    passes = 0
    for line in entry.splitlines()[1:]:
        match = _INSTRUCTION.match(line)
        if match is None or match.group(2) in _NOT_A_PASS:
            continue
        if re.search(r"\[\d", match.group(1)):  # some result has a non-empty shape
            passes += 1
    return passes


def bytes_accessed(compiled) -> float | None:
    """XLA's own count of the bytes the program reads and writes (its cost analysis)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports it
        return None
    if isinstance(cost, list):
        cost = cost[0] if cost else {}
    value = (cost or {}).get("bytes accessed")
    return None if value is None else float(value)


class Stepper:
    """Runs a compiled ``step(params, batch, state) -> (params, state)`` on its own carry."""

    def __init__(self, compiled: Callable, params, batch, state):
        self.compiled = compiled
        self.params, self.batch, self.state = params, batch, state

    def __call__(self):
        self.params, self.state = self.compiled(self.params, self.batch, self.state)
        jax.block_until_ready((self.params, self.state))


def machine() -> dict:
    """CPU model, core count, load, device and library versions (via ``experiments.common``)."""
    versions = common.versions(extra=("optax", "torch"))
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": versions.pop("cpu"),
        "cores": os.cpu_count(),
        "load_average_1min_at_start": load,
        "device": str(jax.devices()[0]),
        "platform": jax.devices()[0].platform,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "versions": versions,
    }
