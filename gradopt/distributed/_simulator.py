"""A seeded, deterministic simulator of asynchronous training, in one process.

It runs the very rules that the Ray back end runs (:class:`ServerShard`,
:class:`WorkerLoop`), with the asynchrony drawn from a seed: which worker takes
the next local step (by relative ``speeds``), and how stale each fetch is
(``read_delay``: the worker receives the server's state as it was that many
server updates ago). Staleness is therefore exact and reproducible.
"""

from __future__ import annotations

import collections
import time
from collections import Counter

import jax
import numpy as np

from gradopt.distributed._async_common import (
    AsyncResult,
    BatchSampler,
    ServerCheckpoint,
    ServerShard,
    Telemetry,
    WorkerLoop,
    check_positive_int,
    check_shards,
    partition,
)


def check_algorithm(where, algorithm):
    if not (hasattr(algorithm, "worker_step_fn") and hasattr(algorithm, "server_apply")):
        raise TypeError(
            f"{where}: algorithm must come from gradopt.distributed.downpour, async_easgd or "
            f"async_eamsgd, got {type(algorithm).__name__}. Wrap a transform tx as downpour(tx)."
        )


def check_workers(where, algorithm, n_workers):
    """The algorithm's own check of the number of workers (async EASGD: n * alpha <= 1)."""
    check = getattr(algorithm, "check_workers", None)
    if check is not None:
        check(n_workers, where)


def build_server(where, algorithm, params, n_shards, resume):
    leaves, treedef = jax.tree.flatten(params)
    if resume is None:
        groups = partition(leaves, n_shards, where)
        shards = [ServerShard(algorithm, [leaves[i] for i in g]) for g in groups]
        return shards, groups, treedef
    if not isinstance(resume, ServerCheckpoint):
        raise TypeError(f"{where}: resume must be a ServerCheckpoint (result.checkpoint).")
    if resume.treedef != treedef:
        raise ValueError(
            f"{where}: resume was saved for parameters {resume.treedef}, but params is "
            f"{treedef}. Pass the same parameter structure."
        )
    shards = [
        ServerShard(algorithm, x, jax.tree.map(jax.numpy.asarray, s), c)
        for x, s, c in zip(resume.leaves, resume.states, resume.clocks, strict=True)
    ]
    return shards, resume.groups, treedef


def gather(shards, groups, treedef):
    leaves = [None] * sum(len(g) for g in groups)
    for g, shard in zip(groups, shards, strict=True):
        for i, x in zip(g, shard.leaves, strict=True):
            leaves[i] = x
    return treedef.unflatten(leaves)


def checkpoint_of(snapshots, groups, treedef) -> ServerCheckpoint:
    return ServerCheckpoint(
        [s[0] for s in snapshots],
        [s[1] for s in snapshots],
        [s[2] for s in snapshots],
        groups,
        treedef,
    )


class _DelayedServer:
    """The workers' view of the server: reads can be served from the past."""

    def __init__(self, shards, max_delay):
        self.shards = shards
        self.past = collections.deque(maxlen=max_delay + 1)
        self.record()
        self.delay = 0

    def record(self):
        self.past.append([s.read() for s in self.shards])

    def read(self):
        return self.past[max(0, len(self.past) - 1 - self.delay)]

    def push(self, payloads, extras, worker, clocks):
        for shard, p, e, c in zip(self.shards, payloads, extras, clocks, strict=True):
            shard.push(p, e, worker, c)
        self.record()


def _delay_sampler(where, read_delay, rng):
    if isinstance(read_delay, tuple):
        low, high = (check_positive_int(where, "read_delay", d, low=0) for d in read_delay)
        if high < low:
            raise ValueError(
                f"{where}: read_delay=(low, high) needs low <= high, got {read_delay}."
            )
        return high, lambda: int(rng.integers(low, high + 1))
    d = check_positive_int(where, "read_delay", read_delay, low=0)
    return d, lambda: d


def simulate(
    algorithm,
    params,
    loss_fn,
    shards,
    *,
    n_workers: int,
    steps: int,
    batch_size: int | None = None,
    seed: int = 0,
    n_shards: int = 1,
    read_delay: int | tuple[int, int] = 0,
    speeds=None,
    warm_start: int = 0,
    eval_fn=None,
    eval_every: int = 0,
    resume: ServerCheckpoint | None = None,
) -> AsyncResult:
    """Run an asynchronous algorithm on the deterministic simulator.

    At every tick the simulator draws (from ``seed``) which worker takes its
    next local step, with probabilities proportional to ``speeds``; that step
    fetches, computes a gradient on the worker's next mini-batch and pushes as
    the algorithm says. A fetch returns the server's state from ``d`` server
    updates ago, ``d`` being ``read_delay`` (or drawn uniformly from
    ``read_delay = (low, high)``; clipped at the start of the run).

    Args:
      algorithm: from :func:`downpour`, :func:`async_easgd` or :func:`async_eamsgd`.
      params: the initial parameters (a pytree of arrays).
      loss_fn: ``loss_fn(params, *batch) -> scalar``.
      shards: one data shard per worker, each a tuple of arrays with the same
        first axis (examples).
      n_workers: the number of workers (>= 1; ``len(shards) >= n_workers``).
      steps: local steps per worker (>= 1).
      batch_size: examples per step, drawn without replacement (None: the whole shard).
      seed: seeds the worker order, the delays and every worker's batches.
      n_shards: server shards (parameter leaves are split between them).
      read_delay: staleness of each fetch, in server updates.
      speeds: relative speed of each worker (default all equal).
      warm_start: local steps that worker 0 takes alone before the others start.
      eval_fn: ``eval_fn(server_params) -> float``, recorded every ``eval_every`` ticks.
      eval_every: ticks between evaluations (0: only at the end).
      resume: a :class:`ServerCheckpoint` to start the server from.

    Returns:
      An :class:`AsyncResult` (server parameters, worker parameters, telemetry,
      history, checkpoint). ``telemetry.order``, ``telemetry.read_delays`` and
      ``telemetry.batches`` record the worker of every tick, its read delay
      and every mini-batch's rows, so a run can be replayed step by step
      against a reference.
    """
    where = "gradopt.distributed.simulate"
    check_algorithm(where, algorithm)
    data = check_shards(where, shards, n_workers)
    check_workers(where, algorithm, n_workers)
    steps = check_positive_int(where, "steps", steps)
    warm_start = check_positive_int(where, "warm_start", warm_start, low=0)
    rng = np.random.default_rng(seed)
    max_delay, draw_delay = _delay_sampler(where, read_delay, rng)
    weights = np.ones(n_workers) if speeds is None else np.asarray(speeds, np.float64)
    if weights.shape != (n_workers,) or not np.all(weights > 0):
        raise ValueError(f"{where}: speeds must be {n_workers} positive numbers, got {speeds!r}.")

    server_shards, groups, treedef = build_server(where, algorithm, params, n_shards, resume)
    server = _DelayedServer(server_shards, max_delay)
    step_fn = algorithm.worker_step_fn(loss_fn)
    start = gather(server_shards, groups, treedef) if resume is not None else params
    workers = [
        WorkerLoop(algorithm, i, start, step_fn, BatchSampler(data[i], batch_size, seed, i))
        for i in range(n_workers)
    ]
    history: list[dict] = []
    clock0 = time.perf_counter()

    def evaluate(tick):
        if eval_fn is not None:
            history.append(
                {
                    "updates": server_shards[0].clock,
                    "pushes": server_shards[0].clock,
                    "ticks": tick,
                    "seconds": time.perf_counter() - clock0,
                    "metric": float(eval_fn(gather(server_shards, groups, treedef))),
                }
            )

    left = np.full(n_workers, steps)
    order: list[int] = []
    read_delays: list[int] = []
    tick = 0
    evaluate(tick)
    while left.sum() > 0:
        if tick < min(warm_start, steps):
            i = 0
        else:
            p = np.where(left > 0, weights, 0.0)
            i = int(rng.choice(n_workers, p=p / p.sum()))
        server.delay = draw_delay()
        order.append(i)
        read_delays.append(server.delay)
        workers[i].tick(server, groups)
        left[i] -= 1
        tick += 1
        if eval_every and tick % eval_every == 0:
            evaluate(tick)
    if not eval_every or tick % eval_every:
        evaluate(tick)

    delays: Counter = Counter()
    pushes: Counter = Counter()
    delays.update(server_shards[0].delays)
    pushes.update(server_shards[0].pushes)
    telemetry = Telemetry(
        dict(sorted(delays.items())),
        [pushes[i] for i in range(n_workers)],
        order=order,
        read_delays=read_delays,
        batches=[w.sampler.drawn for w in workers],
    )
    return AsyncResult(
        params=gather(server_shards, groups, treedef),
        workers=[w.params() for w in workers],
        telemetry=telemetry,
        history=history,
        checkpoint=checkpoint_of([s.snapshot() for s in server_shards], groups, treedef),
    )
