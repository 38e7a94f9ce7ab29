"""Downpour SGD (Dean et al., NIPS 2012): model replicas and a sharded parameter server.

The rule is split in two pure, jitted halves. The server applies any gradient
transformation to the gradients a replica pushes (the paper uses Adagrad); a
replica fetches the parameters every ``n_fetch`` steps, takes local SGD steps
in between, and pushes the gradients it accrued every ``n_push`` steps. The
engines (:func:`gradopt.distributed.simulate`, :func:`gradopt.distributed.run_ray`)
only move the arrays.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import apply_updates
from gradopt.core._checks import check_scalar
from gradopt.distributed._async_common import check_positive_int, check_transform
from gradopt.distributed._delay_tolerant import backlog_since


class DownpourReplica(NamedTuple):
    """A replica's state: its local parameters and the gradients accrued since its last push."""

    params: Any
    accrued: Any  # None right after a push


def _server_apply(tx, leaves, state, grads, extra):
    kwargs = {} if extra is None else backlog_since(state, extra)
    updates, state = tx.update(grads, state, leaves, **kwargs)
    return apply_updates(leaves, updates), state


def _replica_step(grad_fn, local_learning_rate, replica, batch):
    g = grad_fn(replica.params, *batch)
    accrued = g if replica.accrued is None else jax.tree.map(jnp.add, replica.accrued, g)
    params = replica.params
    if local_learning_rate != 0:
        params = jax.tree.map(lambda p, d: (p - local_learning_rate * d).astype(p.dtype), params, g)
    return DownpourReplica(params, accrued)


class Downpour:
    """Downpour SGD; build it with :func:`downpour`."""

    name = "downpour"

    def __init__(self, tx, n_fetch: int, n_push: int, local_learning_rate: float):
        self.tx = tx
        self.n_fetch = n_fetch
        self.n_push = n_push
        self.local_learning_rate = local_learning_rate
        self.server_apply = jax.jit(functools.partial(_server_apply, tx))
        self._steps: dict = {}

    def __reduce__(self):  # jitted functions do not pickle: rebuild them (Ray ships this)
        return (Downpour, (self.tx, self.n_fetch, self.n_push, self.local_learning_rate))

    # -- server (one shard: a list of leaves) --
    def server_init(self, leaves):
        return self.tx.init(leaves)

    def server_read_extra(self, state):
        read = getattr(self.tx, "read", None)
        return None if read is None else read(state)

    # -- replica --
    def worker_init(self, params):
        return DownpourReplica(params, None)

    def worker_step_fn(self, loss_fn):
        if loss_fn not in self._steps:  # one compiled step per loss, reused across runs
            step = functools.partial(_replica_step, jax.grad(loss_fn), self.local_learning_rate)
            self._steps[loss_fn] = jax.jit(step)
        return self._steps[loss_fn]

    def fetch_due(self, step: int) -> bool:
        return step % self.n_fetch == 0

    def push_before_step(self, step: int) -> bool:
        return False

    def push_after_step(self, step: int) -> bool:
        return (step + 1) % self.n_push == 0

    def worker_fetch(self, replica, params):
        return DownpourReplica(params, replica.accrued)

    def worker_payload(self, replica):
        return replica.accrued, DownpourReplica(replica.params, None)

    def worker_params(self, replica):
        return replica.params


def downpour(tx, *, n_fetch: int = 1, n_push: int = 1, local_learning_rate=0.0) -> Downpour:
    r"""Downpour SGD (Dean et al., 2012).

    Replica ``i`` at its local step ``t`` (Algorithm "DownpourSGDClient")::

        if t % n_fetch == 0:  x_i = server.params            # fetch
        g = grad f(x_i; batch_t)
        acc = acc + g
        x_i = x_i - local_learning_rate * g                  # local step
        if (t + 1) % n_push == 0:  server.push(acc); acc = 0

    and the server, on each push, ``u, s = tx.update(acc, s, x); x = x + u`` on
    every shard (by leaf). With one replica and ``n_fetch = n_push = 1`` this is
    the plain optimizer ``tx``, bitwise. With
    :func:`gradopt.distributed.delay_tolerant_adagrad` as ``tx`` the server also
    sends the rule's read snapshot and applies the delay-tolerant revision.

    Args:
      tx: the server's gradient transformation (any gradopt or optax transform;
        the paper uses Adagrad). It runs on each shard's leaves separately, so
        transforms that mix leaves (global-norm clipping) see one shard at a time.
      n_fetch: fetch the parameters every ``n_fetch`` local steps (>= 1).
      n_push: push the accrued gradients every ``n_push`` local steps (>= 1).
      local_learning_rate: the replica's own SGD step between fetches (>= 0;
        0 keeps the fetched parameters).

    Returns:
      A :class:`Downpour` to run with :func:`gradopt.distributed.simulate` or
      :func:`gradopt.distributed.run_ray`.

    Example:
      >>> import gradopt, jax.numpy as jnp, numpy as np
      >>> from gradopt import distributed as gd
      >>> loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)
      >>> x = np.ones((8, 2), np.float32); y = np.ones(8, np.float32)
      >>> algo = gd.downpour(gradopt.adagrad(0.1), n_fetch=2, n_push=2, local_learning_rate=0.01)
      >>> result = gd.simulate(algo, jnp.zeros(2), loss, [(x, y), (x, y)], n_workers=2, steps=4)
      >>> result.telemetry.pushes
      [2, 2]

    References:
      Dean et al., Large Scale Distributed Deep Networks, NIPS 2012.
    """
    where = "gradopt.distributed.downpour"
    check_transform(where, tx)
    n_fetch = check_positive_int(where, "n_fetch", n_fetch)
    n_push = check_positive_int(where, "n_push", n_push)
    check_scalar(where, "local_learning_rate", local_learning_rate, low=0.0, fix="Use 0.0.")
    return Downpour(tx, n_fetch, n_push, float(local_learning_rate))
