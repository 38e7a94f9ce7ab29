"""Hogwild! (Niu, Recht, Ré & Wright, NIPS 2011): lock-free SGD on shared memory.

``n_workers`` OS processes (spawned, never forked after JAX has started) share
one float64 parameter vector. Each samples an example of a sparse problem and
updates only the coordinates that example touches, without any lock. Threads
would serialise on Python's GIL; processes run in parallel. The workers use
NumPy only.

Problems are sparse "hypergraphs": example ``e`` touches the coordinate set
``e``. The paper's analysis uses ``Omega = max_e |e|``, ``Delta = max_u |{e : u
in e}| / |E|`` and ``rho = max_e |{e' : e' meets e}| / |E|``; see
:func:`sparsity_figures`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing as mp
import queue as queue_module
import time
import traceback
from typing import Any

import numpy as np

from gradopt.distributed._async_common import Telemetry, WorkerFailedError, check_positive_int


@dataclasses.dataclass(frozen=True)
class SparseProblem:
    """A sparse problem for :func:`hogwild`.

    ``kind="logistic"``: rows of a CSR matrix (``indptr``, ``indices``,
    ``values``) with labels ``targets`` in {-1, +1}; per example
    ``log(1 + exp(-y w.x)) + reg/2 * sum_{u in e} w_u**2 / d_u``.
    ``kind="completion"``: observed entries ``(rows, cols, targets)`` of a matrix
    of rank ``rank``; parameters ``L`` (n_rows x rank) then ``R`` (n_cols x rank);
    per entry ``(L_u . R_v - z)**2 + reg/2 (|L_u|**2 / d_u + |R_v|**2 / d_v)``.
    ``d_u`` is the number of examples touching ``u``, so the terms add up to
    the full objective with ``reg/2 * |w|**2``.
    """

    kind: str
    n_params: int
    targets: np.ndarray
    reg: float
    indptr: Any = None  # the arrays of the other kind are None
    indices: Any = None
    values: Any = None
    rows: Any = None
    cols: Any = None
    rank: int = 0
    n_rows: int = 0
    n_cols: int = 0

    @property
    def n_examples(self) -> int:
        return int(self.targets.shape[0])


def sparse_logistic_problem(
    n_examples=20000, n_features=20000, nnz=40, *, zipf=0.9, reg=1e-4, seed=0
) -> SparseProblem:
    """A synthetic RCV1-like problem: power-law feature frequencies, unit-norm rows."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_features + 1) ** zipf
    weights /= weights.sum()
    lengths = np.clip(rng.poisson(nnz, n_examples), 1, n_features)
    rows = np.repeat(np.arange(n_examples), lengths)
    cols = rng.choice(n_features, rows.size, p=weights)  # with repeats, removed below
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    keep = np.ones(rows.size, bool)
    keep[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, indices = rows[keep], cols[keep].astype(np.int64)
    lengths = np.bincount(rows, minlength=n_examples)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.random(indptr[-1]) + 0.1
    norms = np.sqrt(np.add.reduceat(values**2, indptr[:-1]))
    values /= np.repeat(norms, lengths)
    w_true = rng.normal(size=n_features) * (rng.random(n_features) < 0.2)
    margin = np.add.reduceat(w_true[indices] * values, indptr[:-1])
    targets = np.where(margin + 0.1 * rng.normal(size=n_examples) > 0, 1.0, -1.0)
    return SparseProblem("logistic", n_features, targets, reg, indptr, indices, values)


def matrix_completion_problem(
    n_rows=500, n_cols=500, rank=3, n_observed=30000, *, reg=1e-2, seed=0
) -> SparseProblem:
    """Observed entries of a random rank-``rank`` matrix plus noise (uniform positions)."""
    rng = np.random.default_rng(seed)
    left = rng.normal(size=(n_rows, rank)) / np.sqrt(rank)
    right = rng.normal(size=(n_cols, rank))
    rows = rng.integers(0, n_rows, n_observed)
    cols = rng.integers(0, n_cols, n_observed)
    targets = np.sum(left[rows] * right[cols], axis=1) + 0.1 * rng.normal(size=n_observed)
    return SparseProblem(
        "completion",
        (n_rows + n_cols) * rank,
        targets,
        reg,
        rows=rows,
        cols=cols,
        rank=rank,
        n_rows=n_rows,
        n_cols=n_cols,
    )


def _degrees(problem: SparseProblem) -> np.ndarray:
    if problem.kind == "logistic":
        return np.maximum(np.bincount(problem.indices, minlength=problem.n_params), 1)
    return np.maximum(
        np.concatenate(
            [
                np.bincount(problem.rows, minlength=problem.n_rows),
                np.bincount(problem.cols, minlength=problem.n_cols),
            ]
        ),
        1,
    ).astype(np.float64)


def initial_params(problem: SparseProblem, seed: int = 0) -> np.ndarray:
    if problem.kind == "logistic":
        return np.zeros(problem.n_params)
    return 0.1 * np.random.default_rng([seed, 99]).normal(size=problem.n_params)


def objective(problem: SparseProblem, w: np.ndarray) -> float:
    """The mean of the per-example terms (the full objective divided by |E|)."""
    n = problem.n_examples
    if problem.kind == "logistic":
        margin = np.add.reduceat(w[problem.indices] * problem.values, problem.indptr[:-1])
        loss = np.logaddexp(0.0, -problem.targets * margin)
    else:
        r = problem.rank
        left = w[: problem.n_rows * r].reshape(problem.n_rows, r)
        right = w[problem.n_rows * r :].reshape(problem.n_cols, r)
        pred = np.sum(left[problem.rows] * right[problem.cols], axis=1)
        loss = (pred - problem.targets) ** 2
    return float(np.mean(loss) + 0.5 * problem.reg * np.dot(w, w) / n)


def sparsity_figures(problem: SparseProblem, *, sample: int = 200, seed: int = 0) -> dict:
    """``Omega``, ``Delta`` and ``rho`` of the problem's hypergraph (Niu et al., 2011).

    For the logistic problem with more than ``sample`` examples, ``rho`` is the
    maximum over ``sample`` of them (those with the most frequent features, and
    random ones): a lower bound.
    For matrix completion, vertices are rows of ``L`` and ``R``; the figures are exact.
    """
    n = problem.n_examples
    if problem.kind == "completion":
        du = np.bincount(problem.rows, minlength=problem.n_rows)
        dv = np.bincount(problem.cols, minlength=problem.n_cols)
        pair = problem.rows * problem.n_cols + problem.cols
        _, where_pair, same = np.unique(pair, return_inverse=True, return_counts=True)
        meets = du[problem.rows] + dv[problem.cols] - same[where_pair]  # entries at (u, v) once
        return {
            "Omega": 2,
            "Delta": float(max(du.max(), dv.max()) / n),
            "rho": float(meets.max() / n),
        }
    degree = np.bincount(problem.indices, minlength=problem.n_params)
    lengths = np.diff(problem.indptr)
    owner = np.repeat(np.arange(n), lengths)
    order = np.argsort(problem.indices, kind="stable")
    starts = np.concatenate([[0], np.cumsum(degree)])
    score = np.add.reduceat(degree[problem.indices], problem.indptr[:-1])
    rng = np.random.default_rng(seed)
    candidates = np.unique(
        np.concatenate([np.argsort(-score)[: sample // 2], rng.integers(0, n, sample // 2)])
    )
    if n <= sample:
        candidates = np.arange(n)
    rho = 0
    for e in candidates:
        feats = problem.indices[problem.indptr[e] : problem.indptr[e + 1]]
        rows = np.concatenate([owner[order[starts[u] : starts[u + 1]]] for u in feats])
        rho = max(rho, np.unique(rows).size)
    return {"Omega": int(lengths.max()), "Delta": float(degree.max() / n), "rho": float(rho / n)}


# ----------------------------------------------------------------------------
# the update loop, shared by the worker processes and the serial baseline


def _sgd_loop(problem, w, counters, me, n_updates, learning_rate, decay, n_workers, seed, fail):
    """``n_updates`` lock-free SGD steps on ``w``; returns the delays observed."""
    rng = np.random.default_rng([seed, me])
    degree = _degrees(problem)
    n = problem.n_examples
    delays = np.zeros(n_updates, np.int64)
    picks = rng.integers(0, n, n_updates)
    y, reg, r = problem.targets, problem.reg, problem.rank
    for k in range(n_updates):
        if fail is not None and k == n_updates // 2:
            if fail == "exit":
                import os

                os._exit(7)
            raise RuntimeError(f"injected failure in worker {me}")
        step = learning_rate * decay ** ((k * n_workers) // n)
        e = picks[k]
        before = counters.sum()
        if problem.kind == "logistic":
            a, b = problem.indptr[e], problem.indptr[e + 1]
            idx, x = problem.indices[a:b], problem.values[a:b]
            wi = w[idx]
            coef = -y[e] / (1.0 + np.exp(y[e] * np.dot(wi, x)))
            w[idx] -= step * (coef * x + reg * wi / degree[idx])
        else:
            u, v = problem.rows[e], problem.n_rows + problem.cols[e]
            left, right = w[u * r : (u + 1) * r], w[v * r : (v + 1) * r]
            res = np.dot(left, right) - y[e]
            gl = 2 * res * right + reg * left / degree[u]
            gr = 2 * res * left + reg * right / degree[v]
            left -= step * gl  # views into the shared vector: in-place, no lock
            right -= step * gr
        delays[k] = counters.sum() - before
        counters[me] += 1
    return delays


def _worker(problem, raw_w, raw_counters, me, n_workers, args, barrier, results):
    try:
        w = np.frombuffer(raw_w, np.float64)
        counters = np.frombuffer(raw_counters, np.int64)
        barrier.wait(timeout=120)
        start = time.monotonic()
        delays = _sgd_loop(problem, w, counters, me, n_workers=n_workers, **args)
        results.put(("done", me, start, time.monotonic(), np.bincount(delays)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        results.put(("error", me, traceback.format_exc()))


@dataclasses.dataclass
class HogwildResult:
    """``params`` (float64), the final ``objective``, the wall ``seconds`` of the
    updates (from a common start barrier to the last worker's end),
    ``updates_per_second`` and the :class:`Telemetry` (delays: updates by other
    workers between an update's read and its write)."""

    params: np.ndarray
    objective: float
    seconds: float
    updates_per_second: float
    telemetry: Telemetry


def serial_sgd(problem, *, n_updates, learning_rate, decay=0.9, seed=0) -> HogwildResult:
    """The same SGD loop in this process, one update after the other (the baseline)."""
    w = initial_params(problem, seed)
    start = time.monotonic()
    delays = _sgd_loop(
        problem, w, np.zeros(1, np.int64), 0, n_updates, learning_rate, decay, 1, seed, None
    )
    seconds = time.monotonic() - start
    hist = np.bincount(delays)
    return HogwildResult(
        w,
        objective(problem, w),
        seconds,
        n_updates / seconds,
        Telemetry({int(d): int(c) for d, c in enumerate(hist) if c}, [n_updates]),
    )


def hogwild(
    problem: SparseProblem,
    *,
    n_workers: int,
    n_updates: int,
    learning_rate: float,
    decay: float = 0.9,
    seed: int = 0,
    timeout: float = 300.0,
    _inject_failure: tuple[int, str] | None = None,
) -> HogwildResult:
    """Hogwild!: ``n_workers`` processes run lock-free SGD on one shared vector.

    Each worker takes ``n_updates // n_workers`` steps: it samples an example
    ``e`` uniformly, reads ``w_e`` (the coordinates ``e`` touches), and writes
    ``w_e -= step * grad f_e(w_e)`` with no lock. ``step = learning_rate *
    decay**epoch`` (an epoch being ``|E|`` updates of all workers together).

    Args:
      problem: from :func:`sparse_logistic_problem` or :func:`matrix_completion_problem`.
      n_workers: processes (>= 1), spawned.
      n_updates: total updates (>= n_workers).
      learning_rate: the initial step, > 0.
      decay: the step's factor per epoch (the paper's backoff), in (0, 1].
      seed: seeds the initial point and every worker's examples.
      timeout: seconds before the workers are stopped and ``TimeoutError`` raised.

    Returns:
      A :class:`HogwildResult`. A worker that raises or dies raises
      :class:`WorkerFailedError` naming it; every process is stopped in all cases.

    References:
      Niu, Recht, Ré & Wright, Hogwild!: A Lock-Free Approach to Parallelizing
      Stochastic Gradient Descent, NIPS 2011, arXiv:1106.5730.
    """
    where = "gradopt.distributed.hogwild"
    if not isinstance(problem, SparseProblem):
        raise TypeError(f"{where}: problem must be a SparseProblem, got {type(problem).__name__}.")
    n_workers = check_positive_int(where, "n_workers", n_workers)
    n_updates = check_positive_int(where, "n_updates", n_updates, low=n_workers)
    if not learning_rate > 0 or not 0 < decay <= 1:
        raise ValueError(f"{where}: need learning_rate > 0 and 0 < decay <= 1.")
    ctx = mp.get_context("spawn")
    raw_w = ctx.RawArray(ctypes.c_double, problem.n_params)
    shared = np.frombuffer(raw_w, np.float64)  # type: ignore[call-overload]
    shared[:] = initial_params(problem, seed)
    raw_counters = ctx.RawArray(ctypes.c_int64, n_workers)
    barrier, results = ctx.Barrier(n_workers), ctx.Queue()
    per_worker = n_updates // n_workers
    procs = []
    for me in range(n_workers):
        fail = _inject_failure[1] if _inject_failure and _inject_failure[0] == me else None
        args = dict(
            n_updates=per_worker, learning_rate=learning_rate, decay=decay, seed=seed, fail=fail
        )
        procs.append(
            ctx.Process(
                target=_worker,
                args=(problem, raw_w, raw_counters, me, n_workers, args, barrier, results),
                daemon=True,
            )
        )
    done: dict[int, tuple] = {}
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        while len(done) < n_workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{where}: the workers took more than timeout={timeout} s.")
            try:
                message = results.get(timeout=0.2)
            except queue_module.Empty:
                for me, p in enumerate(procs):
                    if me not in done and p.exitcode not in (None, 0):
                        raise WorkerFailedError(
                            f"{where}: worker {me} died (exit code {p.exitcode}).", me
                        ) from None
                continue
            if message[0] == "error":
                raise WorkerFailedError(
                    f"{where}: worker {message[1]} failed:\n{message[2]}", message[1]
                )
            done[message[1]] = message[2:]
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        results.close()
        results.join_thread()
    start = min(d[0] for d in done.values())
    seconds = max(d[1] for d in done.values()) - start
    width = max(len(d[2]) for d in done.values())
    hist = np.sum([np.pad(d[2], (0, width - len(d[2]))) for d in done.values()], axis=0)
    w = shared.copy()
    total = per_worker * n_workers
    return HogwildResult(
        w,
        objective(problem, w),
        seconds,
        total / seconds,
        Telemetry({int(d): int(c) for d, c in enumerate(hist) if c}, [per_worker] * n_workers),
    )
