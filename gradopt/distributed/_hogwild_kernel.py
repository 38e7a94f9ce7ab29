"""The compiled Hogwild! worker loops (Numba, ``nogil``, cached on disk).

Imported only when :func:`gradopt.distributed.hogwild` or
:func:`gradopt.distributed.serial_sgd` runs, so ``gradopt`` imports without
Numba. Every loop is the paper's update for one worker: for each picked example
``e``, read the coordinates ``w_e`` it touches, compute ``grad f_e(w_e)``, and
subtract ``step * grad`` coordinate by coordinate from whatever ``w`` holds at
that moment, without a lock. Serial SGD is the same loop with one worker.

Shared arguments of both loops:
  w: the shared float64 parameter vector, updated in place.
  picks: the examples this worker visits, in order.
  steps: ``steps[epoch]``, the step size of each epoch (``|E|`` updates of all
    workers together; the epoch of local update ``k`` is ``k * n_workers // |E|``).
  counters: int64, ``counters[me * STRIDE]`` counts this worker's updates
    (one cache line per worker, so that counting does not make the cores fight
    over a line).
  delays: int64 output; ``delays[k // sample_every]`` receives, for every
    ``sample_every``-th update, the number of updates the other workers made
    between its read and its write.
  stop: int64 flag read every 1024 updates; non-zero ends the loop early.
    ``stop`` and ``counters`` are plain loads and stores, not atomics, and
    nothing in Numba promises that the compiled loop re-reads them; so the
    tests check that a raised flag stops a running loop, and the study's
    2-worker runs see the other worker's counter move (non-zero delays).
  fail_at: raise at this local update index (tests of failure reporting); -1: never.
Both return the number of updates made.
"""

from __future__ import annotations

import numpy as np
from numba import njit

STRIDE = 8  # int64 slots per worker in ``counters``: 64 bytes, one cache line


@njit(nogil=True, cache=True)
def _others(counters, me, n_workers):
    total = 0
    for i in range(n_workers):
        if i != me:
            total += counters[i * STRIDE]
    return total


@njit(nogil=True, cache=True)
def logistic_loop(
    indptr,
    indices,
    values,
    targets,
    degree,
    reg,
    w,
    picks,
    steps,
    n_workers,
    counters,
    me,
    delays,
    sample_every,
    stop,
    fail_at,
):
    n_examples = targets.shape[0]
    longest = 0
    for e in range(n_examples):
        longest = max(longest, indptr[e + 1] - indptr[e])
    read = np.empty(longest)  # w_e as read, for the regulariser's gradient
    done = 0
    for k in range(picks.shape[0]):
        if (k & 1023) == 0 and stop[0] != 0:
            break
        if k == fail_at:
            raise RuntimeError("injected failure in a Hogwild worker")
        sampled = sample_every > 0 and k % sample_every == 0
        if sampled:
            before = _others(counters, me, n_workers)
        e = picks[k]
        a, b = indptr[e], indptr[e + 1]
        margin = 0.0
        for j in range(a, b):
            read[j - a] = w[indices[j]]
            margin += read[j - a] * values[j]
        y = targets[e]
        coef = -y / (1.0 + np.exp(y * margin))  # d/dm log(1 + exp(-y m))
        step = steps[(k * n_workers) // n_examples]
        for j in range(a, b):
            u = indices[j]
            w[u] -= step * (coef * values[j] + reg * read[j - a] / degree[u])
        if sampled:
            delays[k // sample_every] = _others(counters, me, n_workers) - before
        counters[me * STRIDE] += 1
        done += 1
    return done


@njit(nogil=True, cache=True)
def completion_loop(
    rows,
    cols,
    targets,
    degree,
    reg,
    rank,
    n_rows,
    w,
    picks,
    steps,
    n_workers,
    counters,
    me,
    delays,
    sample_every,
    stop,
    fail_at,
):
    n_examples = targets.shape[0]
    left = np.empty(rank)
    right = np.empty(rank)
    done = 0
    for k in range(picks.shape[0]):
        if (k & 1023) == 0 and stop[0] != 0:
            break
        if k == fail_at:
            raise RuntimeError("injected failure in a Hogwild worker")
        sampled = sample_every > 0 and k % sample_every == 0
        if sampled:
            before = _others(counters, me, n_workers)
        e = picks[k]
        u, v = rows[e], n_rows + cols[e]
        res = 0.0
        for i in range(rank):
            left[i] = w[u * rank + i]
            right[i] = w[v * rank + i]
            res += left[i] * right[i]
        res -= targets[e]
        step = steps[(k * n_workers) // n_examples]
        for i in range(rank):
            w[u * rank + i] -= step * (2.0 * res * right[i] + reg * left[i] / degree[u])
            w[v * rank + i] -= step * (2.0 * res * left[i] + reg * right[i] / degree[v])
        if sampled:
            delays[k // sample_every] = _others(counters, me, n_workers) - before
        counters[me * STRIDE] += 1
        done += 1
    return done
