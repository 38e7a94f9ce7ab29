"""Asynchronous EASGD and EAMSGD (Zhang, Choromanska & LeCun, NIPS 2015, Algorithms 1 and 2).

The center variable lives on the server. At every local step a worker reads
its own parameters ``x = x_i``; every ``tau`` steps it also reads the center,
computes the elastic difference ``e = alpha * (x - center)`` from that read
(:func:`gradopt.distributed.elastic_difference`, the rule the synchronous EASGD
uses too) and sends it; the server adds it to the center. The local step then
moves ``x_i - e`` by a step computed from the gradient at the read ``x``
(EASGD: any gradient transformation) or at ``x + delta v`` (EAMSGD: the
paper's Nesterov momentum), as in Algorithms 1 and 2: the gradient is taken
at the parameters as they were *before* the exchange.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax

from gradopt.core._checks import check_scalar
from gradopt.core._numerics import compute_dtype
from gradopt.distributed._async_common import check_positive_int, check_transform
from gradopt.distributed._elastic import elastic_difference


class ElasticWorker(NamedTuple):
    """A worker's state.

    Attributes:
      params: the local parameters ``x_i`` (before this step's exchange).
      local: the local optimizer's state (EASGD) or the velocity ``v_i`` (EAMSGD).
      pending: the elastic difference not yet sent to the server, else None.
      elastic: the elastic difference the next local step subtracts (zeros
        when there was no exchange).
    """

    params: Any
    local: Any
    pending: Any
    elastic: Any


def _move(x, e, u):
    """``(x - e) + u`` leaf by leaf: the exchange, then the local step (Algorithm 1's order)."""

    def leaf(p, d, s):
        dtype = compute_dtype(p.dtype)
        return ((p.astype(dtype) - d.astype(dtype)) + s.astype(dtype)).astype(p.dtype)

    return jax.tree.map(leaf, x, e, u)


def _tx_step(grad_fn, tx, worker, batch):
    x = worker.params  # the read x: the gradient is taken here, before the exchange
    g = grad_fn(x, *batch)
    updates, local = tx.update(g, worker.local, x)
    zero = jax.tree.map(jax.numpy.zeros_like, x)
    return ElasticWorker(_move(x, worker.elastic, updates), local, worker.pending, zero)


def _nesterov_step(grad_fn, learning_rate, momentum, worker, batch):
    x, v = worker.params, worker.local
    ahead = jax.tree.map(lambda p, u: (p + momentum * u).astype(p.dtype), x, v)
    g = grad_fn(ahead, *batch)
    v = jax.tree.map(lambda u, d: (momentum * u - learning_rate * d).astype(u.dtype), v, g)
    zero = jax.tree.map(jax.numpy.zeros_like, x)
    return ElasticWorker(_move(x, worker.elastic, v), v, worker.pending, zero)


def _exchange(alpha, worker, center):
    e = elastic_difference(worker.params, center, alpha)
    return ElasticWorker(worker.params, worker.local, e, e)


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

    def check_workers(self, n_workers: int, where: str) -> None:
        """ValueError unless ``n_workers * alpha <= 1`` (the center must not overshoot)."""
        if n_workers * self.alpha > 1:
            raise ValueError(
                f"{where}: {self.name} with alpha = {self.alpha:g} and n_workers = {n_workers} "
                f"gives n_workers * alpha = {n_workers * self.alpha:g} > 1; the center would "
                f"overshoot the workers' mean. Pass alpha <= 1 / n_workers "
                f"(= {1 / n_workers:g}), e.g. alpha = 0.9 / n_workers."
            )

    def worker_init(self, params):
        zero = jax.tree.map(jax.numpy.zeros_like, params)
        local = zero if self.tx is None else self.tx.init(params)
        return ElasticWorker(params, local, None, zero)

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
        return worker.pending, worker._replace(pending=None)

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

        x = x_i                                  # the read of its own parameters
        if t % tau == 0:
            c~  = server.center                  # its current read of the center
            e   = alpha * (x - c~)
            x_i = x_i - e;  server: center = center + e
        x_i = x_i + tx.update(grad f(x; batch_t), state, x)   # the gradient at the read x

    The gradient is taken at ``x``, the parameters read *before* the exchange,
    as in the paper (with ``tx = sgd(eta)``: ``x_i <- x_i - eta * g(x)``).

    Args:
      tx: the workers' local gradient transformation (plain SGD in the paper).
      alpha: the moving rate, ``0 <= alpha <= 1`` (``alpha = 0``: independent
        workers); the run checks ``n_workers * alpha <= 1``.
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

        x = x_i                                  # the read, before the exchange
        (every tau steps: the exchange of async_easgd, x_i = x_i - e)
        v_i = momentum * v_i - learning_rate * grad f(x + momentum * v_i; batch_t)
        x_i = x_i + v_i

    The gradient is taken at the look-ahead of the read ``x``; the exchange
    leaves ``v_i`` alone.

    Args:
      learning_rate: the local step size, > 0.
      momentum: ``delta``, ``0 <= momentum < 1`` (the paper uses 0.99).
      alpha: the moving rate, ``0 <= alpha <= 1``; the run checks
        ``n_workers * alpha <= 1``.
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
