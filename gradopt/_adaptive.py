"""Adaptive scaling: Adagrad's sum of squares, RMSprop, Adadelta's unit correction,
AdaMax's infinity norm.

Each transform keeps statistics of the gradient (the ``grads`` keyword inside a
chain, else the incoming updates) and divides the incoming updates by a
per-coordinate scale. The full update rules are on the named optimizers
(:func:`gradopt.adagrad`, :func:`gradopt.rmsprop`, :func:`gradopt.adadelta`,
:func:`gradopt.adam`, :func:`gradopt.adamax`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt._base import (
    GradientTransformation,
    check_same_structure,
    full_like,
    hyper,
    increment,
    transform,
    tree_map,
    zero_count,
)
from gradopt._checks import check_flag, check_scalar
from gradopt._moments import (
    check_decay,
    check_dtype,
    check_eps,
    one_minus,
    one_minus_power,
    state_zeros,
    wider,
)

PyTree = Any


def _grads(updates, state_tree, extra):
    """The gradient the statistics are built from, checked against the state."""
    grads = extra.get("grads", updates)
    check_same_structure(updates, state_tree, what="updates", reference_what="state")
    check_same_structure(grads, state_tree, what="grads", reference_what="state")
    return grads


def _store(new, like):
    return jax.tree.map(lambda n, m: n.astype(m.dtype), new, like)


def _root(x, eps, eps_inside):
    """``sqrt(x) + eps`` or ``sqrt(x + eps)``."""
    e = hyper(eps, x)
    return jnp.sqrt(x + e) if eps_inside else jnp.sqrt(x) + e


# ----------------------------------------------------------------------------
# Adagrad


class SumOfSquaresState(NamedTuple):
    """State of :func:`scale_by_sum_of_squares`: the accumulated ``g**2``."""

    sum_of_squares: PyTree


def _sos_init(params, *, eps, initial_accumulator_value, eps_inside_sqrt):
    del eps, eps_inside_sqrt
    return SumOfSquaresState(full_like(params, initial_accumulator_value))


def _sos_update(
    updates, state, params=None, *, eps, initial_accumulator_value, eps_inside_sqrt, **extra
):
    del params, initial_accumulator_value
    grads = _grads(updates, state.sum_of_squares, extra)

    def acc(g, s):
        c = wider(g.dtype, s.dtype)
        gc = g.astype(c)
        return s.astype(c) + gc * gc

    new = tree_map(acc, grads, state.sum_of_squares, what="grads")

    def out(u, s):
        c = wider(u.dtype, s.dtype)
        return (u.astype(c) / _root(s.astype(c), eps, eps_inside_sqrt)).astype(u.dtype)

    return jax.tree.map(out, updates, new), SumOfSquaresState(_store(new, state.sum_of_squares))


def scale_by_sum_of_squares(
    *, eps=1e-10, initial_accumulator_value=0.0, eps_inside_sqrt: bool = False
) -> GradientTransformation:
    """Adagrad's scaling: ``G += g**2``; outputs ``u / (sqrt(G) + eps)``.

    Args:
      eps: added to the denominator, > 0.
      initial_accumulator_value: the starting value of ``G``, >= 0.
      eps_inside_sqrt: divide by ``sqrt(G + eps)`` instead.

    Returns:
      A gradient transformation with state :class:`SumOfSquaresState`.
    """
    where = "gradopt.scale_by_sum_of_squares"
    check_eps(where, eps)
    check_scalar(
        where,
        "initial_accumulator_value",
        initial_accumulator_value,
        low=0.0,
        fix="Use 0.0 (the paper) or 0.1 (Keras' default).",
    )
    check_flag(where, "eps_inside_sqrt", eps_inside_sqrt)
    return transform(
        _sos_init,
        _sos_update,
        eps=eps,
        initial_accumulator_value=initial_accumulator_value,
        eps_inside_sqrt=eps_inside_sqrt,
    )


# ----------------------------------------------------------------------------
# RMSprop (and Adam's denominator)


class ScaleByRmsState(NamedTuple):
    """State of :func:`scale_by_rms`.

    Attributes:
      nu: the moving average of ``g**2``.
      mean: the moving average of ``g`` (``centered=True``), else None.
      nu_max: the running maximum of ``nu`` (``amsgrad=True``), else None.
      count: the number of updates seen.
    """

    nu: PyTree
    mean: PyTree
    nu_max: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _rms_init(params, *, decay, eps, eps_inside_sqrt, centered, debias, amsgrad, dtype):
    del decay, eps, eps_inside_sqrt, debias
    return ScaleByRmsState(
        nu=state_zeros(params, dtype),
        mean=state_zeros(params, dtype) if centered else None,
        nu_max=state_zeros(params, dtype) if amsgrad else None,
        count=zero_count(),
    )


def _moving(decay, square):
    def leaf(g, m):
        c = wider(g.dtype, m.dtype)
        gc = g.astype(c)
        x = gc * gc if square else gc
        return hyper(decay, gc) * m.astype(c) + one_minus(decay, gc) * x

    return leaf


def _rms_update(
    updates,
    state,
    params=None,
    *,
    decay,
    eps,
    eps_inside_sqrt,
    centered,
    debias,
    amsgrad,
    dtype,
    **extra,
):
    del params, dtype
    grads = _grads(updates, state.nu, extra)
    count = increment(state.count)
    nu = tree_map(_moving(decay, True), grads, state.nu, what="grads")
    mean = jax.tree.map(_moving(decay, False), grads, state.mean) if centered else None
    if amsgrad:
        nu_max = jax.tree.map(lambda n, m: jnp.maximum(n, m.astype(n.dtype)), nu, state.nu_max)
    else:
        nu_max = None

    def out(u, v, *rest):
        c = wider(u.dtype, v.dtype)
        v = v.astype(c)
        if debias:
            v = v / one_minus_power(decay, count, v)
        if centered:
            mu = rest[0].astype(c)
            if debias:
                mu = mu / one_minus_power(decay, count, mu)
            # nu - mean**2 >= 0 in exact arithmetic; clamp the rounding error.
            v = jnp.maximum(v - mu * mu, 0)
        return (u.astype(c) / _root(v, eps, eps_inside_sqrt)).astype(u.dtype)

    second = nu_max if amsgrad else nu
    args = (updates, second) + ((mean,) if centered else ())
    new_updates = jax.tree.map(out, *args)
    new_state = ScaleByRmsState(
        nu=_store(nu, state.nu),
        mean=_store(mean, state.mean) if centered else None,
        nu_max=_store(nu_max, state.nu_max) if amsgrad else None,
        count=count,
    )
    return new_updates, new_state


def scale_by_rms(
    decay,
    *,
    eps,
    eps_inside_sqrt: bool = False,
    centered: bool = False,
    debias: bool = False,
    amsgrad: bool = False,
    dtype=None,
) -> GradientTransformation:
    """Divide the updates by the root of a moving average of ``g**2`` (RMSprop, Adam).

    ``nu = decay*nu + (1-decay)*g**2``; outputs ``u / (sqrt(nu) + eps)``.

    * ``centered``: also ``mean = decay*mean + (1-decay)*g`` and use
      ``nu - mean**2`` (Graves, 2013).
    * ``debias``: use ``nu / (1 - decay**t)`` (and likewise the mean).
    * ``amsgrad``: use the running maximum of ``nu``, debiased after the
      maximum as PyTorch and Keras do (Reddi et al., 2018).
    * ``eps_inside_sqrt``: ``sqrt(. + eps)`` instead of ``sqrt(.) + eps``.

    Args:
      decay: the decay rate in [0, 1) (RMSprop's ``decay``, Adam's ``b2``).
      eps: > 0. Keyword only, like the switches.
      dtype: storage dtype of the statistics (None: each leaf's dtype); the
        arithmetic is in float32 or wider.

    Returns:
      A gradient transformation with state :class:`ScaleByRmsState`.
    """
    where = "gradopt.scale_by_rms"
    check_decay(where, "decay", decay)
    check_eps(where, eps)
    for name, flag in (
        ("eps_inside_sqrt", eps_inside_sqrt),
        ("centered", centered),
        ("debias", debias),
        ("amsgrad", amsgrad),
    ):
        check_flag(where, name, flag)
    check_dtype(where, dtype)
    return transform(
        _rms_init,
        _rms_update,
        decay=decay,
        eps=eps,
        eps_inside_sqrt=eps_inside_sqrt,
        centered=centered,
        debias=debias,
        amsgrad=amsgrad,
        dtype=dtype,
    )


# ----------------------------------------------------------------------------
# Adadelta


class AdadeltaState(NamedTuple):
    """State of :func:`scale_by_adadelta`: ``E[g**2]`` and ``E[dx**2]``."""

    grad_sq: PyTree
    delta_sq: PyTree


def _adadelta_init(params, *, rho, eps):
    del rho, eps
    return AdadeltaState(grad_sq=state_zeros(params, None), delta_sq=state_zeros(params, None))


def _adadelta_update(updates, state, params=None, *, rho, eps, **extra):
    del params
    grads = _grads(updates, state.grad_sq, extra)
    grad_sq = tree_map(_moving(rho, True), grads, state.grad_sq, what="grads")

    def delta(u, eg, ed):
        c = wider(u.dtype, eg.dtype)
        e = hyper(eps, eg.astype(c))
        return jnp.sqrt(ed.astype(c) + e) / jnp.sqrt(eg.astype(c) + e) * u.astype(c)

    dx = jax.tree.map(delta, updates, grad_sq, state.delta_sq)
    delta_sq = jax.tree.map(_moving(rho, True), dx, state.delta_sq)
    new_updates = jax.tree.map(lambda d, u: d.astype(u.dtype), dx, updates)
    new_state = AdadeltaState(_store(grad_sq, state.grad_sq), _store(delta_sq, state.delta_sq))
    return new_updates, new_state


def scale_by_adadelta(rho, *, eps) -> GradientTransformation:
    """Adadelta's unit correction (Zeiler, 2012).

    ``E[g**2] = rho*E[g**2] + (1-rho)*g**2``;
    ``dx = sqrt(E[dx**2] + eps) / sqrt(E[g**2] + eps) * u``;
    ``E[dx**2] = rho*E[dx**2] + (1-rho)*dx**2``; outputs ``dx``. The sign is
    that of the gradient: follow with ``scale_by_learning_rate(1.0)`` to descend.

    Args:
      rho: the decay rate in [0, 1).
      eps: > 0. Keyword only.

    Returns:
      A gradient transformation with state :class:`AdadeltaState`.
    """
    check_decay("gradopt.scale_by_adadelta", "rho", rho)
    check_eps("gradopt.scale_by_adadelta", eps)
    return transform(_adadelta_init, _adadelta_update, rho=rho, eps=eps)


# ----------------------------------------------------------------------------
# AdaMax


class MaxNormState(NamedTuple):
    """State of :func:`scale_by_max_norm`: the exponentially weighted infinity norm."""

    norm: PyTree


def _max_init(params, *, decay, eps, eps_inside_max):
    del decay, eps, eps_inside_max
    return MaxNormState(norm=state_zeros(params, None))


def _max_update(updates, state, params=None, *, decay, eps, eps_inside_max, **extra):
    del params
    grads = _grads(updates, state.norm, extra)

    def norm(g, n):
        c = wider(g.dtype, n.dtype)
        a = jnp.abs(g.astype(c))
        if eps_inside_max:
            a = a + hyper(eps, a)
        return jnp.maximum(hyper(decay, a) * n.astype(c), a)

    new = tree_map(norm, grads, state.norm, what="grads")

    def out(u, n):
        c = wider(u.dtype, n.dtype)
        n = n.astype(c)
        d = n if eps_inside_max else n + hyper(eps, n)
        return (u.astype(c) / d).astype(u.dtype)

    return tree_map(out, updates, new), MaxNormState(_store(new, state.norm))


def scale_by_max_norm(decay, *, eps, eps_inside_max: bool = False) -> GradientTransformation:
    """AdaMax's infinity norm (Kingma & Ba, 2015, section 7.1).

    ``n = max(decay*n, |g|)``; outputs ``u / (n + eps)``. With
    ``eps_inside_max=True`` (PyTorch): ``n = max(decay*n, |g| + eps)`` and the
    output is ``u / n``.

    Args:
      decay: the decay rate in [0, 1) (AdaMax's ``b2``).
      eps: > 0. Keyword only.
      eps_inside_max: put eps inside the maximum, as torch.optim.Adamax does.

    Returns:
      A gradient transformation with state :class:`MaxNormState`.
    """
    where = "gradopt.scale_by_max_norm"
    check_decay(where, "decay", decay)
    check_eps(where, eps)
    check_flag(where, "eps_inside_max", eps_inside_max)
    return transform(_max_init, _max_update, decay=decay, eps=eps, eps_inside_max=eps_inside_max)
