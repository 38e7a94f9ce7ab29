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

from gradopt.core._base import apply_updates
from gradopt.core._numerics import as_compute, increment, zero_count
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
from gradopt.optimizers._sgd import sgd

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


def _groups(tree, fragments):
    """Leaf indices of each fragment, leaves dealt round-robin (None: one fragment, the tree)."""
    if fragments == 1:
        return None
    n = len(jax.tree.leaves(tree))
    if fragments > n:
        raise ValueError(
            f"{_WHERE}: `fragments` = {fragments} but the parameters have only {n} leaves; "
            f"fragments are made of whole leaves. Pass fragments <= {n}."
        )
    return [list(range(p, n, fragments)) for p in range(fragments)]


def _split(tree, groups):
    """Each fragment: the tree itself (one fragment) or the list of its leaves."""
    if groups is None:
        return [tree]
    leaves = jax.tree.leaves(tree)
    return [[leaves[i] for i in g] for g in groups]


def _merge(parts, like, groups):
    if groups is None:
        return parts[0]
    leaves = [None] * sum(len(g) for g in groups)
    for g, part in zip(groups, parts, strict=True):
        for i, x in zip(g, part, strict=True):
            leaves[i] = x
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def _diloco_init(params, *, inner, outer, fragments, mesh, axis):
    k = _workers(params, 0.0, _WHERE)
    _check_layout(k, mesh, axis, _WHERE)
    groups = _groups(params, fragments)
    params = _constrain(params, mesh, PartitionSpec(axis))
    inner_state = _constrain(jax.vmap(inner.init)(params), mesh, PartitionSpec(axis))
    theta = _constrain(workers_mean(params), mesh, PartitionSpec())
    outer_states = [outer.init(part) for part in _split(theta, groups)]
    outer_state = outer_states[0] if groups is None else tuple(outer_states)
    outer_state = _constrain(outer_state, mesh, PartitionSpec())
    return DilocoState(inner_state, outer_state, theta, zero_count())


def _diloco_update(updates, state, params, *, inner, outer, sync_every, fragments, mesh, axis):
    if params is None:
        raise ValueError(f"{_WHERE}: update needs `params` (the workers' x_i).")
    u, inner_state = jax.vmap(inner.update)(updates, state.inner, params)
    groups = _groups(params, fragments)
    u_parts, x_parts = _split(u, groups), _split(params, groups)
    theta_parts = _split(state.params, groups)
    outer_states = [state.outer] if groups is None else list(state.outer)

    for p in range(fragments):
        x = x_parts[p]

        def sync(u, theta, outer_state, x=x):
            local = apply_updates(x, u)
            theta, outer_state = _outer_step(local, theta, outer_state, outer=outer)
            # The step that takes each worker from x_i to theta (the next round's start).
            to_theta = jax.tree.map(
                lambda t, y: (as_compute(t)[None] - as_compute(y)).astype(y.dtype), theta, x
            )
            return to_theta, theta, outer_state

        def local_only(u, theta, outer_state):
            return u, theta, outer_state

        # After the H-th inner step of the fragment's round; fragment p is shifted by p H / P.
        due = (state.count + 1 + (p * sync_every) // fragments) % sync_every == 0
        u_parts[p], theta_parts[p], outer_states[p] = jax.lax.cond(
            due, sync, local_only, u_parts[p], theta_parts[p], outer_states[p]
        )

    updates = _constrain(_merge(u_parts, u, groups), mesh, PartitionSpec(axis))
    theta = _merge(theta_parts, state.params, groups)
    outer_state = outer_states[0] if groups is None else tuple(outer_states)
    inner_state = _constrain(inner_state, mesh, PartitionSpec(axis))
    return updates, DilocoState(inner_state, outer_state, theta, increment(state.count))


def diloco(
    inner, outer=None, *, sync_every: int, fragments: int = 1, mesh=None, axis=None
) -> ElasticTransformation:
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
      fragments: ``P`` >= 1, Streaming DiLoCo's fragments (Douillard et al.,
        2025): the parameter leaves are dealt round-robin into ``P`` fragments
        (leaf ``j`` to fragment ``j % P``, the paper's strided pattern), each
        with its own outer state, and fragment ``p`` takes its outer step
        after the inner steps ``t`` with ``(t + p H // P) % H == 0``: every
        fragment still every ``H`` steps, but staggered, so each all-reduce
        carries about ``1/P`` of the parameters. With ``P > 1`` the outer
        transform sees each fragment as a list of leaves. 1: DiLoCo.
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
      Douillard, Donchev, Rush, Kale, Charles, Garrett, Teston, Lacey,
      McIlroy, Shen, Ramé, Szlam, Ranzato & Barham, "Streaming DiLoCo with
      overlapping communication: Towards a Distributed Free Lunch", 2025,
      arXiv:2501.18512 (the fragments only; neither the overlapping of
      communication with computation nor the quantisation).
    """
    check_transform(inner, _WHERE, "inner")
    if outer is None:
        outer = sgd(0.7, momentum=0.9, nesterov=True)
    check_transform(outer, _WHERE, "outer")
    check_positive_int(sync_every, "sync_every", _WHERE)
    check_positive_int(fragments, "fragments", _WHERE)
    if mesh is not None or axis is not None:
        _check_mesh(mesh, axis, _WHERE)
    hyper_ = {"inner": inner, "outer": outer, "fragments": fragments, "mesh": mesh, "axis": axis}

    def init(params):
        return _diloco_init(params, **hyper_)

    def update(updates, state, params=None, **extra):
        del extra
        return _diloco_update(updates, state, params, sync_every=sync_every, **hyper_)

    return ElasticTransformation(init, update, _no_lookahead)
