"""DiLoCo: distributed low-communication training (Douillard et al., 2023).

``k`` workers, each with its own parameters ``x_i`` and inner optimizer state,
share the global parameters ``theta``. Every round, each worker takes ``H``
inner steps from ``theta`` with its own data and no communication; then one
outer step treats the workers' mean displacement as a gradient (Algorithm 1 of
the paper)::

    x_i <- x_i + inner(grad f_i(x_i))           # H times per round, per worker
    Delta = mean_i(theta - x_i)                 # the outer gradient: one all-reduce
    theta <- theta + outer(Delta)               # SGD with Nesterov momentum in the paper
    x_i <- theta                                # every worker starts the next round there

The parameters are one pytree whose leaves carry a leading worker axis of size
``k`` (:func:`gradopt.distributed.stack_workers`), laid out over a mesh axis;
``theta`` and the outer state are replicated. The mean over the workers is the
only communication, one all-reduce of the parameters' size every ``H`` steps
(``jax.lax.cond`` skips it otherwise).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from gradopt._base import apply_updates
from gradopt._numerics import as_compute, increment, zero_count
from gradopt._sgd import sgd
from gradopt.distributed._checks import check_positive_int, check_transform
from gradopt.distributed._easgd import (
    ElasticTransformation,
    _check_layout,
    _check_mesh,
    _constrain,
    _no_lookahead,
    _workers,
    workers_mean,
)

_WHERE = "gradopt.distributed.diloco"


class DilocoState(NamedTuple):
    """State of :func:`diloco`: inner states (stacked), outer state, ``theta``, the step."""

    inner: Any
    outer: Any
    params: Any  # theta, the global parameters
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _outer_step(local, theta, outer_state, *, outer):
    """``Delta = mean_i(theta - x_i)``; ``theta += outer(Delta)``; every worker at ``theta``."""

    def displacement(t, x):
        return jnp.mean(as_compute(t)[None] - as_compute(x), axis=0).astype(t.dtype)

    delta = jax.tree.map(displacement, theta, local)
    step, outer_state = outer.update(delta, outer_state, theta)
    theta = apply_updates(theta, step)
    return theta, outer_state


def _diloco_init(params, *, inner, outer, mesh, axis):
    k = _workers(params, 0.0, _WHERE)
    _check_layout(k, mesh, axis, _WHERE)
    params = _constrain(params, mesh, PartitionSpec(axis))
    inner_state = _constrain(jax.vmap(inner.init)(params), mesh, PartitionSpec(axis))
    theta = _constrain(workers_mean(params), mesh, PartitionSpec())
    outer_state = _constrain(outer.init(theta), mesh, PartitionSpec())
    return DilocoState(inner_state, outer_state, theta, zero_count())


def _diloco_update(updates, state, params, *, inner, outer, sync_every, mesh, axis):
    if params is None:
        raise ValueError(f"{_WHERE}: update needs `params` (the workers' x_i).")
    u, inner_state = jax.vmap(inner.update)(updates, state.inner, params)

    def sync(u, theta, outer_state):
        local = apply_updates(params, u)
        theta, outer_state = _outer_step(local, theta, outer_state, outer=outer)
        # The step that takes each worker from x_i to theta (the next round's start).
        to_theta = jax.tree.map(
            lambda t, x: (as_compute(t)[None] - as_compute(x)).astype(x.dtype), theta, params
        )
        return to_theta, theta, outer_state

    def local_only(u, theta, outer_state):
        return u, theta, outer_state

    due = (state.count + 1) % sync_every == 0  # after the H-th inner step of a round
    updates, theta, outer_state = jax.lax.cond(due, sync, local_only, u, state.params, state.outer)
    updates = _constrain(updates, mesh, PartitionSpec(axis))
    inner_state = _constrain(inner_state, mesh, PartitionSpec(axis))
    return updates, DilocoState(inner_state, outer_state, theta, increment(state.count))


def diloco(inner, outer=None, *, sync_every: int, mesh=None, axis=None) -> ElasticTransformation:
    """DiLoCo: ``k`` workers take ``H`` inner steps each, then one outer step on their mean.

    Update rule (worker ``i``; the outer step after every ``H``-th inner step)::

        x_i   <- x_i + inner(grad f_i(x_i))          # every step, locally
        Delta  = mean_i(theta - x_i)                  # every H steps: one all-reduce
        theta <- theta + outer(Delta)
        x_i   <- theta

    Args:
      inner: each worker's optimizer (AdamW in the paper; any gradopt or optax
        transform); every worker keeps its own state across rounds.
      outer: the transform that takes ``Delta`` as its gradient and updates
        ``theta`` (any gradopt or optax transform). None: the paper's choice,
        ``gradopt.sgd(0.7, momentum=0.9, nesterov=True)`` (PyTorch's Nesterov
        form: ``v = 0.9 v + Delta``, ``theta -= 0.7 (Delta + 0.9 v)``).
      sync_every: ``H``, the inner steps per round (an integer >= 1; the paper
        uses 500).
      mesh, axis: optional ``jax.sharding.Mesh`` and its axis (of type *Auto*)
        the workers are laid out over; the workers' parameters and inner
        states are sharded over it, ``theta`` and the outer state replicated.

    Returns:
      An :class:`ElasticTransformation` (no look-ahead: the gradient is taken
      at ``x_i``); ``init`` and ``update`` take the workers' parameters stacked
      along a leading axis of size ``k`` (:func:`stack_workers`), the gradients
      likewise. ``state.params`` is ``theta``, the model to evaluate or ship.
      ``init`` starts ``theta`` at the workers' mean (their value when they
      start equal, as they should).

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> from gradopt.distributed import diloco, stack_workers, worker_step
      >>> tx = diloco(gradopt.adamw(0.01), sync_every=4)
      >>> params = stack_workers({"w": jnp.zeros(3)}, 4)
      >>> state = tx.init(params)
      >>> step = worker_step(lambda p, b: jnp.mean((b @ p["w"] - 1.0) ** 2), tx)
      >>> for _ in range(8):
      ...     params, state, losses = step(params, state, jnp.ones((4, 8, 3)))
      >>> theta = state.params["w"]  # after two rounds every worker is at theta
      >>> bool(jnp.allclose(params["w"], jnp.broadcast_to(theta, params["w"].shape)))
      True

    Note:
      With ``H = 1`` and ``outer = sgd(1.0)`` DiLoCo is synchronous data
      parallelism for an inner optimizer whose step is linear in the gradient
      and its state (SGD, momentum, Nesterov): the mean of the workers' steps is
      then the step on the mean gradient. For an adaptive inner optimizer
      (Adam) every worker normalises its own gradient, so it is not.
      After an outer step the workers are moved to ``theta`` by the update
      ``theta - x_i``, an additive update like every transform's:
      ``x_i + (theta - x_i)`` rounds to ``theta`` exactly when ``x_i`` and
      ``theta`` are within a factor 2 of each other, else to within one ulp
      of it. ``theta`` itself (``state.params``) is exact.

    References:
      Douillard, Feng, Rusu, Chhaparia, Donchev, Kuncoro, Ranzato, Szlam &
      Shen, "DiLoCo: Distributed Low-Communication Training of Language
      Models", 2023, arXiv:2311.08455 (Algorithm 1).
    """
    check_transform(inner, _WHERE, "inner")
    if outer is None:
        outer = sgd(0.7, momentum=0.9, nesterov=True)
    check_transform(outer, _WHERE, "outer")
    check_positive_int(sync_every, "sync_every", _WHERE)
    if mesh is not None or axis is not None:
        _check_mesh(mesh, axis, _WHERE)
    hyper_ = {"inner": inner, "outer": outer, "mesh": mesh, "axis": axis}

    def init(params):
        return _diloco_init(params, **hyper_)

    def update(updates, state, params=None, **extra):
        del extra
        return _diloco_update(updates, state, params, sync_every=sync_every, **hyper_)

    return ElasticTransformation(init, update, _no_lookahead)
