"""Asynchronous EASGD and EAMSGD (Zhang, Choromanska & LeCun, NIPS 2015, Algorithms 1 and 2).

The center variable lives on the server. Every ``tau`` local steps a worker
reads the center, computes the elastic difference ``e = alpha * (x - center)``
from that read (:func:`gradopt.distributed.elastic_difference`, the rule the
synchronous EASGD uses too), subtracts it locally and sends it; the server adds
it to the center. Between exchanges the worker takes local steps: any gradient
transformation (EASGD) or the paper's Nesterov momentum (EAMSGD).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax

from gradopt.core._base import apply_updates
from gradopt.core._checks import check_scalar
from gradopt.distributed._async_common import check_positive_int, check_transform
from gradopt.distributed._elastic import elastic_difference


class ElasticWorker(NamedTuple):
    """A worker's state: local parameters, local optimizer state (or velocity), pending ``e``."""

    params: Any
    local: Any
    pending: Any  # the elastic difference not yet sent, else None


def _tx_step(grad_fn, tx, worker, batch):
    g = grad_fn(worker.params, *batch)
    updates, local = tx.update(g, worker.local, worker.params)
    return ElasticWorker(apply_updates(worker.params, updates), local, worker.pending)


def _nesterov_step(grad_fn, learning_rate, momentum, worker, batch):
    x, v = worker.params, worker.local
    ahead = jax.tree.map(lambda p, u: (p + momentum * u).astype(p.dtype), x, v)
    g = grad_fn(ahead, *batch)
    v = jax.tree.map(lambda u, d: (momentum * u - learning_rate * d).astype(u.dtype), v, g)
    x = jax.tree.map(lambda p, u: (p + u).astype(p.dtype), x, v)
    return ElasticWorker(x, v, worker.pending)


def _exchange(alpha, worker, center):
    e = elastic_difference(worker.params, center, alpha)
    x = jax.tree.map(lambda p, d: (p - d).astype(p.dtype), worker.params, e)
    return ElasticWorker(x, worker.local, e)


def _center_add(leaves, state, e, extra):
    del extra
    return [(c + d).astype(c.dtype) for c, d in zip(leaves, e, strict=True)], state


class AsyncElastic:
    """Asynchronous EASGD / EAMSGD; build it with :func:`async_easgd` or :func:`async_eamsgd`."""

    def __init__(self, *, alpha, tau, tx=None, learning_rate=None, momentum=None):
        self.alpha = alpha
        self.tau = tau
        self.tx = tx
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.name = "async_eamsgd" if tx is None else "async_easgd"
        self.server_apply = jax.jit(_center_add)
        self._exchange = jax.jit(functools.partial(_exchange, alpha))
        self._steps: dict = {}

    def __reduce__(self):  # jitted functions do not pickle: rebuild them (Ray ships this)
        kwargs = dict(alpha=self.alpha, tau=self.tau, tx=self.tx)
        kwargs.update(learning_rate=self.learning_rate, momentum=self.momentum)
        return (functools.partial(AsyncElastic, **kwargs), ())

    def server_init(self, leaves):
        return None

    def server_read_extra(self, state):
        return None

    def worker_init(self, params):
        if self.tx is None:
            return ElasticWorker(params, jax.tree.map(jax.numpy.zeros_like, params), None)
        return ElasticWorker(params, self.tx.init(params), None)

    def worker_step_fn(self, loss_fn):
        if loss_fn in self._steps:  # one compiled step per loss, reused across runs
            return self._steps[loss_fn]
        grad_fn = jax.grad(loss_fn)
        if self.tx is None:
            step = functools.partial(_nesterov_step, grad_fn, self.learning_rate, self.momentum)
        else:
            step = functools.partial(_tx_step, grad_fn, self.tx)
        self._steps[loss_fn] = jax.jit(step)
        return self._steps[loss_fn]

    def fetch_due(self, step: int) -> bool:
        return step % self.tau == 0

    push_before_step = fetch_due

    def push_after_step(self, step: int) -> bool:
        return False

    def worker_fetch(self, worker, center):
        return self._exchange(worker, center)

    def worker_payload(self, worker):
        return worker.pending, ElasticWorker(worker.params, worker.local, None)

    def worker_params(self, worker):
        return worker.params


def _check_alpha(where, alpha):
    check_scalar(
        where,
        "alpha",
        alpha,
        low=0.0,
        high=1.0,
        fix="The paper uses alpha = 0.9 / p for p workers.",
    )


def async_easgd(tx, *, alpha, tau: int = 1) -> AsyncElastic:
    r"""Asynchronous EASGD (Zhang, Choromanska & LeCun, 2015, Algorithm 1).

    Worker ``i`` at its local step ``t``::

        if t % tau == 0:
            c~  = server.center                  # its current read of the center
            e   = alpha * (x_i - c~)
            x_i = x_i - e;  server: center = center + e
        x_i = x_i + tx.update(grad f(x_i; batch_t))     # a local step

    Args:
      tx: the workers' local gradient transformation (plain SGD in the paper).
      alpha: the moving rate, ``0 <= alpha <= 1`` (``alpha = 0``: independent workers).
      tau: the communication period in local steps, >= 1.

    Returns:
      An :class:`AsyncElastic` to run with :func:`gradopt.distributed.simulate`
      or :func:`gradopt.distributed.run_ray`; the result's ``params`` is the center.

    Example:
      >>> import gradopt, jax.numpy as jnp, numpy as np
      >>> from gradopt import distributed as gd
      >>> loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)
      >>> x = np.ones((8, 2), np.float32); y = np.ones(8, np.float32)
      >>> algo = gd.async_easgd(gradopt.sgd(0.1), alpha=0.3, tau=2)
      >>> result = gd.simulate(algo, jnp.zeros(2), loss, [(x, y)] * 3, n_workers=3, steps=6)
      >>> result.telemetry.pushes
      [3, 3, 3]

    References:
      Zhang, Choromanska & LeCun, Deep learning with Elastic Averaging SGD,
      NIPS 2015, arXiv:1412.6651.
    """
    where = "gradopt.distributed.async_easgd"
    check_transform(where, tx)
    _check_alpha(where, alpha)
    tau = check_positive_int(where, "tau", tau)
    return AsyncElastic(alpha=float(alpha), tau=tau, tx=tx)


def async_eamsgd(learning_rate, *, momentum=0.9, alpha, tau: int = 1) -> AsyncElastic:
    r"""Asynchronous EAMSGD (Zhang, Choromanska & LeCun, 2015, Algorithm 2).

    Asynchronous EASGD whose local step is Nesterov's momentum, as in the paper::

        v_i = momentum * v_i - learning_rate * grad f(x_i + momentum * v_i; batch_t)
        x_i = x_i + v_i

    The exchange every ``tau`` steps is :func:`async_easgd`'s and leaves ``v_i`` alone.

    Args:
      learning_rate: the local step size, > 0.
      momentum: ``delta``, ``0 <= momentum < 1`` (the paper uses 0.99).
      alpha: the moving rate, ``0 <= alpha <= 1``.
      tau: the communication period in local steps, >= 1.

    Returns:
      An :class:`AsyncElastic`.

    References:
      Zhang, Choromanska & LeCun, Deep learning with Elastic Averaging SGD,
      NIPS 2015, arXiv:1412.6651.
    """
    where = "gradopt.distributed.async_eamsgd"
    check_scalar(where, "learning_rate", learning_rate, low=0.0, low_open=True, fix="Use 0.01.")
    check_scalar(where, "momentum", momentum, low=0.0, high=1.0, high_open=True, fix="Use 0.9.")
    _check_alpha(where, alpha)
    tau = check_positive_int(where, "tau", tau)
    return AsyncElastic(
        alpha=float(alpha), tau=tau, learning_rate=float(learning_rate), momentum=float(momentum)
    )
