"""What the asynchronous back ends share: the server shard, the worker's loop,
telemetry, checkpoints and argument checks.

An asynchronous algorithm (Downpour, asynchronous EASGD) is a small object with
pure, jitted pieces: the server's rule on one shard of parameter leaves and the
worker's local step. :class:`ServerShard` and :class:`WorkerLoop` call them in
the same order whatever moves the arrays: the simulator calls them directly,
the Ray back end from actors.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import jax
import numpy as np


def check_positive_int(where: str, name: str, value: Any, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(
            f"{where}: {name} must be an integer >= {low}, got {value!r}. "
            f"Pass {name}={max(low, 1)} or more."
        )
    return int(value)


def check_transform(where: str, tx: Any, name: str = "tx") -> None:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"{where}: {name} must be a gradient transformation with init and update "
            f"(for example gradopt.adagrad(0.1)), got {type(tx).__name__} {tx!r:.80}."
        )


def check_shards(where: str, shards: Any, n_workers: Any) -> list[tuple[np.ndarray, ...]]:
    """Per-worker data shards as tuples of NumPy arrays with a common first axis."""
    n_workers = check_positive_int(where, "n_workers", n_workers)
    if not isinstance(shards, (list, tuple)):
        raise TypeError(
            f"{where}: shards must be a list with one data shard per worker (a tuple of "
            f"arrays with the same first axis), got {type(shards).__name__}."
        )
    if len(shards) < n_workers:
        raise ValueError(
            f"{where}: shards has {len(shards)} data shard(s) for n_workers={n_workers}; "
            "each worker needs its own shard. Split the data into at least n_workers parts "
            "or use fewer workers."
        )
    out = []
    for i, shard in enumerate(shards[:n_workers]):
        arrays = tuple(np.asarray(a) for a in (shard if isinstance(shard, tuple) else (shard,)))
        sizes = {a.shape[0] if a.ndim else -1 for a in arrays}
        if len(sizes) != 1 or -1 in sizes or 0 in sizes:
            raise ValueError(
                f"{where}: shards[{i}] must be non-empty arrays with the same first axis, "
                f"got shapes {[a.shape for a in arrays]}."
            )
        out.append(arrays)
    return out


def partition(leaves: list, n_shards: int, where: str) -> list[list[int]]:
    """Leaf indices per server shard, balanced by size (largest leaf to the lightest shard)."""
    n_shards = check_positive_int(where, "n_shards", n_shards)
    if n_shards > len(leaves):
        raise ValueError(
            f"{where}: n_shards={n_shards} but the parameters have only {len(leaves)} "
            f"leaves; the server is sharded by leaf. Use n_shards <= {len(leaves)}."
        )
    loads = [0] * n_shards
    groups: list[list[int]] = [[] for _ in range(n_shards)]
    for i in sorted(range(len(leaves)), key=lambda i: -int(np.size(leaves[i]))):
        k = loads.index(min(loads))
        groups[k].append(i)
        loads[k] += int(np.size(leaves[i]))
    return [sorted(g) for g in groups]


class BatchSampler:
    """Seeded mini-batches from one worker's shard (the same sequence on every back end)."""

    def __init__(self, shard: tuple[np.ndarray, ...], batch_size: int | None, seed: int, worker):
        self.shard = shard
        self.n = shard[0].shape[0]
        self.batch_size = batch_size
        self.rng = np.random.default_rng([seed, worker])
        self.drawn: list[list[int] | None] = []  # per step: the rows taken, None: the whole shard

    def next(self) -> tuple[np.ndarray, ...]:
        if self.batch_size is None or self.batch_size >= self.n:
            self.drawn.append(None)
            return self.shard
        idx = self.rng.choice(self.n, self.batch_size, replace=False)
        self.drawn.append(idx.tolist())
        return tuple(a[idx] for a in self.shard)


@dataclasses.dataclass
class Telemetry:
    """Staleness of an asynchronous run, and (simulator) what it needs to be replayed.

    Attributes:
      delays: histogram ``{delay: count}``; a push's delay is the number of
        server updates between the worker's read and its write.
      pushes: pushes per worker.
      failed: workers that failed (only filled when the run continued without them).
      order: (simulator) the worker that took each tick's local step, in order.
      read_delays: (simulator) each tick's read delay in server updates (the
        server's state that tick's fetch would see: that many updates ago).
      batches: (simulator) ``batches[i][t]``: the rows of worker ``i``'s shard
        in its ``t``-th mini-batch, in the order used; None when the step
        used the whole shard.

    ``order``, ``read_delays`` and ``batches`` replay a simulated run exactly
    (a reference implementation can take the same steps on the same rows);
    :func:`gradopt.distributed.run_ray` leaves them empty (its interleaving is
    the machine's; its batches are the simulator's for the same seed).
    """

    delays: dict[int, int]
    pushes: list[int]
    failed: list[int] = dataclasses.field(default_factory=list)
    order: list[int] = dataclasses.field(default_factory=list)
    read_delays: list[int] = dataclasses.field(default_factory=list)
    batches: list[list[list[int] | None]] = dataclasses.field(default_factory=list)

    def mean_delay(self) -> float:
        total = sum(self.delays.values())
        return sum(d * c for d, c in self.delays.items()) / total if total else 0.0


@dataclasses.dataclass
class ServerCheckpoint:
    """The server's state as NumPy arrays: pass it back as ``resume=`` to continue."""

    leaves: list[list[np.ndarray]]
    states: list[Any]
    clocks: list[int]
    groups: list[list[int]]
    treedef: Any


@dataclasses.dataclass
class AsyncResult:
    """What an asynchronous run returns.

    Attributes:
      params: the server's parameters (Downpour) or center variable (EASGD).
      workers: each worker's last local parameters.
      telemetry: :class:`Telemetry` (delay histogram, pushes per worker).
      history: rows ``{"updates", "pushes", "seconds", "metric"}`` from ``eval_fn``.
      checkpoint: :class:`ServerCheckpoint` to resume from.
    """

    params: Any
    workers: list[Any]
    telemetry: Telemetry
    history: list[dict]
    checkpoint: ServerCheckpoint


class WorkerFailedError(RuntimeError):
    """A worker raised or died; ``result`` holds the server's intact state at that time."""

    def __init__(self, message: str, worker: int, result: AsyncResult | None = None):
        super().__init__(message)
        self.worker = worker
        self.result = result


def to_numpy(tree):
    return jax.tree.map(np.asarray, tree)


class ServerShard:
    """One shard of the server: some parameter leaves, the rule's state for them, a clock."""

    def __init__(self, algorithm, leaves, state=None, clock: int = 0):
        self.algorithm = algorithm
        self.leaves = [jax.numpy.asarray(x) for x in leaves]
        self.state = algorithm.server_init(self.leaves) if state is None else state
        self.clock = clock
        self.delays: Counter = Counter()
        self.pushes: Counter = Counter()

    def read(self):
        """``(leaves, clock, extra)``: ``extra`` is what the rule needs back at the push."""
        return self.leaves, self.clock, self.algorithm.server_read_extra(self.state)

    def push(self, payload, extra, worker: int, read_clock: int) -> int:
        if read_clock == self.clock:
            extra = None  # no update since the read: no backlog, the rule needs nothing back
        self.leaves, self.state = self.algorithm.server_apply(
            self.leaves, self.state, list(payload), extra
        )
        self.delays[self.clock - read_clock] += 1
        self.pushes[worker] += 1
        self.clock += 1
        return self.clock

    def snapshot(self):
        return [np.asarray(x) for x in self.leaves], to_numpy(self.state), self.clock


class WorkerLoop:
    """One worker's loop, one local step per :meth:`tick`.

    ``server`` must offer ``read() -> list of (leaves, clock, extra)`` (one per
    shard) and ``push(payloads, extras, worker, clocks)``.
    """

    def __init__(self, algorithm, index: int, params, step_fn, sampler: BatchSampler):
        self.algorithm = algorithm
        self.index = index
        self.treedef = jax.tree.structure(params)
        self.state = algorithm.worker_init(params)
        self.step_fn = step_fn
        self.sampler = sampler
        self.step = 0
        self.reads = None

    def _fetch(self, server, groups):
        reads = server.read()
        leaves = [None] * sum(len(g) for g in groups)
        for group, (shard_leaves, _, _) in zip(groups, reads, strict=True):
            for i, x in zip(group, shard_leaves, strict=True):
                leaves[i] = x
        self.reads = reads
        self.state = self.algorithm.worker_fetch(self.state, self.treedef.unflatten(leaves))

    def _push(self, server, groups):
        payload, self.state = self.algorithm.worker_payload(self.state)
        leaves = jax.tree.leaves(payload)
        server.push(
            [[np.asarray(leaves[i]) for i in g] for g in groups],
            [r[2] for r in self.reads],
            self.index,
            [r[1] for r in self.reads],
        )

    def tick(self, server, groups) -> None:
        a = self.algorithm
        if a.fetch_due(self.step):
            self._fetch(server, groups)
        if a.push_before_step(self.step):
            self._push(server, groups)
        self.state = self.step_fn(self.state, self.sampler.next())
        if a.push_after_step(self.step):
            self._push(server, groups)
        self.step += 1

    def params(self):
        return self.algorithm.worker_params(self.state)
