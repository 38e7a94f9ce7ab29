"""Synchronous EASGD and EAMSGD over a mesh axis (Zhang, Choromanska & LeCun, 2015).

``p`` workers, each with its own parameters ``x_i`` and optimizer state, are
tied to a center variable ``c`` by an elastic force. The parameters are one
pytree whose leaves carry a leading worker axis of size ``p``, laid out over a
mesh axis (one or more workers per device). At step ``t`` every worker takes
its local step from the gradient at its current ``x_i``; when ``tau`` divides
``t`` all workers also exchange with the center (eqs. 5-6 of the paper)::

    e_i = alpha * (x_i - c)                       # before the local step
    x_i <- x_i - e_i + u_i                         # u_i: the local optimizer's step
    c   <- c + sum_i e_i         # = (1 - beta) c + beta mean_i x_i, beta = p alpha

EAMSGD (Algorithm 2) replaces the local step by Nesterov momentum, the
gradient taken at the look-ahead point ``x_i + delta v_i``::

    v_i <- delta v_i - eta grad f_i(x_i + delta v_i);   x_i <- x_i - e_i + v_i

The sum over workers is the only communication: one all-reduce of the
parameters' size every ``tau`` steps (``jax.lax.cond`` skips it otherwise).
The exchange is :func:`gradopt.distributed.elastic_difference`, the rule the
asynchronous EASGD shares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from gradopt.core._base import apply_updates
from gradopt.core._numerics import as_compute, hyper, increment, zero_count, zeros_like
from gradopt.distributed._checks import check_mesh_axis, check_positive_int, check_transform
from gradopt.distributed._elastic import elastic_difference


class ElasticTransformation(NamedTuple):
    """A ``GradientTransformation`` (``init``, ``update``) plus ``lookahead``.

    ``lookahead(params, state)`` is where the gradient must be taken: the
    parameters themselves for EASGD, ``x + delta v`` for EAMSGD.
    """

    init: Callable[..., Any]
    update: Callable[..., Any]
    lookahead: Callable[[Any, Any], Any]


class EasgdState(NamedTuple):
    """State of :func:`easgd`: the workers' inner states (stacked), the center, the step."""

    inner: Any
    center: Any
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


class EamsgdState(NamedTuple):
    """State of :func:`eamsgd`: the workers' velocities (stacked), the center, the step."""

    velocity: Any
    center: Any
    count: jax.Array  # type: ignore[assignment]


def _check_alpha_tau(alpha, tau, where):
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and not alpha >= 0:
        raise ValueError(
            f"{where}: `alpha` (the moving rate) must be >= 0, got {alpha!r}. The paper uses "
            "alpha = beta / p with beta = 0.9, e.g. alpha = 0.9 / 8 for 8 workers."
        )
    check_positive_int(tau, "tau", where)


def _workers(params, alpha, where) -> int:
    """The number of workers (leading axis of every leaf); checks ``p * alpha <= 1``."""
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in jax.tree.leaves(params)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"{where}: every `params` leaf must have the same leading worker axis (size p), got "
            f"leading sizes {sorted(map(str, sizes))}. Stack the workers' parameters with "
            "gradopt.distributed.stack_workers(params, p)."
        )
    p = int(next(iter(sizes)) or 0)
    if isinstance(alpha, (int, float)) and p * alpha > 1:
        raise ValueError(
            f"{where}: `alpha` = {alpha} with p = {p} workers gives p * alpha = {p * alpha:g} > 1; "
            "the center would overshoot the workers' mean. Pass alpha <= 1 / p "
            f"(= {1 / p:g}), e.g. alpha = 0.9 / p."
        )
    return p


def _check_layout(p, mesh, axis, where):
    if mesh is not None and p % mesh.shape[axis]:
        raise ValueError(
            f"{where}: p = {p} workers cannot be laid out evenly over mesh axis `axis` = {axis!r} "
            f"of size {mesh.shape[axis]}. Use a number of workers that is a multiple of it."
        )


def _constrain(tree, mesh, spec):
    if mesh is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, NamedSharding(mesh, spec))


def _check_mesh(mesh, axis, where):
    check_mesh_axis(mesh, axis, where)
    kind = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))[axis]
    if kind != jax.sharding.AxisType.Auto:
        raise ValueError(
            f"{where}: mesh axis `axis` = {axis!r} is of type {kind}; the workers are laid out "
            "by XLA's sharding propagation, which needs an Auto axis. Build the mesh with "
            f"jax.make_mesh(shape, names, axis_types=(jax.sharding.AxisType.Auto,) * len(names))."
        )


def _exchange(params, center, count, *, alpha, tau):
    """``(e, new_center)``: the elastic differences and the moved center, or zeros and ``c``."""

    def exchange(params, center):
        wide = jax.tree.map(lambda c, x: jnp.broadcast_to(c, jnp.shape(x)), center, params)
        e = elastic_difference(params, wide, alpha)
        moved = jax.tree.map(
            lambda c, d: (as_compute(c) + jnp.sum(as_compute(d), axis=0)).astype(c.dtype),
            center,
            e,
        )
        return e, moved

    def skip(params, center):
        return zeros_like(params), center

    return jax.lax.cond(count % tau == 0, exchange, skip, params, center)


def workers_mean(params):
    """The mean over the leading worker axis, computed as ``x_0 + mean_i(x_i - x_0)``.

    Workers that start equal (:func:`stack_workers`) give exactly their common
    value; workers that differ give their mean.
    """

    def leaf(x):
        x0 = as_compute(x[0])
        return (x0 + jnp.mean(as_compute(x) - x0[None], axis=0)).astype(x.dtype)

    return jax.tree.map(leaf, params)


def _subtract(u, e):
    return jax.tree.map(lambda a, b: (as_compute(a) - as_compute(b)).astype(a.dtype), u, e)


# ----------------------------------------------------------------------------
# EASGD


def _easgd_init(params, *, tx, alpha, tau, mesh, axis):
    del tau
    p = _workers(params, alpha, "gradopt.distributed.easgd")
    _check_layout(p, mesh, axis, "gradopt.distributed.easgd")
    params = _constrain(params, mesh, PartitionSpec(axis))
    inner = _constrain(jax.vmap(tx.init)(params), mesh, PartitionSpec(axis))
    center = _constrain(workers_mean(params), mesh, PartitionSpec())
    return EasgdState(inner, center, zero_count())


def _easgd_update(updates, state, params=None, *, tx, alpha, tau, mesh, axis, **extra):
    del extra
    if params is None:
        raise ValueError("gradopt.distributed.easgd: update needs `params` (the workers' x_i).")
    u, inner = jax.vmap(tx.update)(updates, state.inner, params)
    e, center = _exchange(params, state.center, state.count, alpha=alpha, tau=tau)
    updates = _constrain(_subtract(u, e), mesh, PartitionSpec(axis))
    inner = _constrain(inner, mesh, PartitionSpec(axis))
    return updates, EasgdState(inner, center, increment(state.count))


def _no_lookahead(params, state):
    del state
    return params


def easgd(tx, *, alpha, tau: int = 1, mesh=None, axis=None) -> ElasticTransformation:
    """Synchronous EASGD: p workers running ``tx``, exchanging with a center every tau steps.

    Update rule (worker ``i``, step ``t``; the exchange only when ``tau`` divides ``t``)::

        e_i = alpha * (x_i - c)
        x_i <- x_i - e_i + tx(grad f_i(x_i))
        c   <- c + sum_i e_i

    Args:
      tx: each worker's optimizer (any gradopt or optax transform); every
        worker has its own state.
      alpha: the moving rate, ``0 <= alpha`` and ``p * alpha <= 1`` (the paper:
        ``alpha = 0.9 / p``). ``alpha = 0`` gives ``p`` independent runs.
      tau: the communication period (an integer >= 1).
      mesh, axis: optional ``jax.sharding.Mesh`` and the axis the workers are
        laid out over; the workers' parameters and states are then sharded
        over it and the center replicated.

    Returns:
      An :class:`ElasticTransformation`; ``init`` and ``update`` take the
      workers' parameters stacked along a leading axis of size ``p``
      (:func:`stack_workers`); the gradients are stacked the same way.
      ``init`` starts the center at the workers' mean: their common value
      when they start equal, as in the paper (every worker starts at the
      center); workers that differ are averaged (computed as
      ``x_0 + mean_i(x_i - x_0)``, so equal workers give their value exactly).

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> from gradopt.distributed import easgd, stack_workers, worker_step
      >>> tx = easgd(gradopt.sgd(0.1), alpha=0.9 / 4, tau=2)
      >>> params = stack_workers({"w": jnp.zeros(3)}, 4)
      >>> state = tx.init(params)
      >>> loss = lambda p, b: jnp.mean((b @ p["w"] - 1.0) ** 2)
      >>> step = worker_step(loss, tx)
      >>> params, state, losses = step(params, state, jnp.ones((4, 8, 3)))

    References:
      Zhang, Choromanska & LeCun, "Deep learning with Elastic Averaging SGD",
      NeurIPS 2015, arXiv:1412.6651 (eqs. 5-6; Algorithm 1 with tau).
    """
    where = "gradopt.distributed.easgd"
    check_transform(tx, where)
    _check_alpha_tau(alpha, tau, where)
    if mesh is not None or axis is not None:
        _check_mesh(mesh, axis, where)
    hyper_ = {"tx": tx, "alpha": alpha, "tau": tau, "mesh": mesh, "axis": axis}

    def init(params):
        return _easgd_init(params, **hyper_)

    def update(updates, state, params=None, **extra):
        return _easgd_update(updates, state, params, **hyper_, **extra)

    return ElasticTransformation(init, update, _no_lookahead)


# ----------------------------------------------------------------------------
# EAMSGD


def _eamsgd_init(params, *, alpha, mesh, axis):
    p = _workers(params, alpha, "gradopt.distributed.eamsgd")
    _check_layout(p, mesh, axis, "gradopt.distributed.eamsgd")
    params = _constrain(params, mesh, PartitionSpec(axis))
    center = _constrain(workers_mean(params), mesh, PartitionSpec())
    return EamsgdState(zeros_like(params), center, zero_count())


def _eamsgd_update(updates, state, params, *, learning_rate, momentum, alpha, tau, mesh, axis):
    if params is None:
        raise ValueError("gradopt.distributed.eamsgd: update needs `params` (the workers' x_i).")

    def velocity(v, g):
        v, g = as_compute(v), as_compute(g)
        return (hyper(momentum, v) * v - hyper(learning_rate, g) * g).astype(v.dtype)

    v = jax.tree.map(velocity, state.velocity, updates)
    e, center = _exchange(params, state.center, state.count, alpha=alpha, tau=tau)
    updates = _constrain(_subtract(v, e), mesh, PartitionSpec(axis))
    v = _constrain(v, mesh, PartitionSpec(axis))
    return updates, EamsgdState(v, center, increment(state.count))


def eamsgd(
    learning_rate, *, momentum, alpha, tau: int = 1, mesh=None, axis=None
) -> ElasticTransformation:
    """Synchronous EAMSGD: EASGD whose local step is Nesterov momentum (Algorithm 2).

    Update rule (worker ``i``; the exchange only when ``tau`` divides ``t``)::

        e_i = alpha * (x_i - c)
        v_i <- delta v_i - eta grad f_i(x_i + delta v_i)
        x_i <- x_i - e_i + v_i
        c   <- c + sum_i e_i

    The gradient is taken at ``tx.lookahead(params, state) = x + delta v``
    (:func:`worker_step` does this).

    Args:
      learning_rate: ``eta`` (>= 0).
      momentum: ``delta`` in ``[0, 1)`` (the paper: 0.99).
      alpha, tau, mesh, axis: as in :func:`easgd`.

    Returns:
      An :class:`ElasticTransformation` over worker-stacked parameters; the
      center starts at the workers' mean, as in :func:`easgd`.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradopt.distributed import eamsgd, stack_workers, worker_step
      >>> tx = eamsgd(0.05, momentum=0.9, alpha=0.9 / 4, tau=4)
      >>> params = stack_workers({"w": jnp.zeros(3)}, 4)
      >>> state = tx.init(params)
      >>> step = worker_step(lambda p, b: jnp.mean((b @ p["w"] - 1.0) ** 2), tx)
      >>> params, state, losses = step(params, state, jnp.ones((4, 8, 3)))

    References:
      Zhang, Choromanska & LeCun, "Deep learning with Elastic Averaging SGD",
      NeurIPS 2015, arXiv:1412.6651 (Algorithm 2).
    """
    where = "gradopt.distributed.eamsgd"
    _check_alpha_tau(alpha, tau, where)
    if isinstance(learning_rate, (int, float)) and not learning_rate >= 0:
        raise ValueError(f"{where}: `learning_rate` must be >= 0, got {learning_rate!r}.")
    if isinstance(momentum, (int, float)) and not 0 <= momentum < 1:
        raise ValueError(f"{where}: `momentum` (delta) must be in [0, 1), got {momentum!r}.")
    if mesh is not None or axis is not None:
        _check_mesh(mesh, axis, where)
    settings = {"learning_rate": learning_rate, "momentum": momentum, "alpha": alpha}

    def init(params):
        return _eamsgd_init(params, alpha=alpha, mesh=mesh, axis=axis)

    def update(updates, state, params=None, **extra):
        del extra
        return _eamsgd_update(updates, state, params, **settings, tau=tau, mesh=mesh, axis=axis)

    def lookahead(params, state):
        def leaf(x, v):
            return (as_compute(x) + hyper(momentum, as_compute(v)) * as_compute(v)).astype(x.dtype)

        return jax.tree.map(leaf, params, state.velocity)

    return ElasticTransformation(init, update, lookahead)


# ----------------------------------------------------------------------------
# helpers


def stack_workers(params, p: int, mesh=None, axis=None):
    """``p`` copies of ``params`` along a new leading worker axis (sharded over ``axis``)."""
    check_positive_int(p, "p", "gradopt.distributed.stack_workers")
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (p, *jnp.shape(x))), params)
    if mesh is not None:
        _check_mesh(mesh, axis, "gradopt.distributed.stack_workers")
        return jax.device_put(stacked, NamedSharding(mesh, PartitionSpec(axis)))
    return stacked


def worker_step(loss_fn, tx):
    """A jitted step ``(params, state, batch) -> (params, state, losses)`` for worker-stacked runs.

    Each worker's gradient is taken at ``tx.lookahead(params, state)`` (when
    ``tx`` has it) on its own slice ``batch[i]``; ``losses`` holds each
    worker's loss there.
    """
    check_transform(tx, "gradopt.distributed.worker_step")
    lookahead = getattr(tx, "lookahead", _no_lookahead)

    @jax.jit
    def step(params, state, batch):
        point = lookahead(params, state)
        losses, grads = jax.vmap(jax.value_and_grad(loss_fn))(point, batch)
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state, losses

    return step
