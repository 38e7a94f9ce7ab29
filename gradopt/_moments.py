"""Moment estimates: moving averages of g and g^2, bias correction, Nadam's numerator.

These are the building blocks of Adam and its relatives (the update rules are
written out on :func:`gradopt.adam`, :func:`gradopt.nadam` and friends). Every
stage stores its state in a fixed dtype and computes in float32 or wider.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt._base import (
    GradientTransformation,
    as_compute,
    check_same_structure,
    compute_dtype,
    hyper,
    increment,
    transform,
    tree_map,
    zero_count,
    zeros_like,
)
from gradopt._checks import check_scalar

PyTree = Any

_DECAY_FIX = "Decay rates lie in [0, 1): 0.9 and 0.999 are the usual values."


# ----------------------------------------------------------------------------
# numerics shared by the moment and adaptive transforms


def check_decay(where: str, name: str, value) -> None:
    """A decay rate (b1, b2, rho, ...) must lie in [0, 1)."""
    check_scalar(where, name, value, low=0.0, high=1.0, high_open=True, fix=_DECAY_FIX)


def check_eps(where: str, value, name: str = "eps") -> None:
    """An eps must be a positive number."""
    check_scalar(
        where, name, value, low=0.0, low_open=True, fix="Use a small positive value such as 1e-8."
    )


def check_dtype(where: str, dtype, name: str = "dtype") -> None:
    if dtype is None:
        return
    try:
        ok = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(
            f"{where}: {name} must be None or a floating dtype such as jnp.bfloat16 or "
            f"jnp.float32, got {dtype!r}."
        )


def wider(*dtypes) -> jnp.dtype:
    """The widest compute dtype among ``dtypes`` (float32 at least; floats before integers)."""
    return max(
        (compute_dtype(d) for d in dtypes),
        key=lambda d: (jnp.issubdtype(d, jnp.floating), jnp.dtype(d).itemsize),
    )


def saturate(x, dtype):
    """``min(x, largest finite value of dtype)``: squares and their sums saturate.

    A finite gradient above ``sqrt(max)`` (1.8e19 in float32 and bfloat16) has
    a square that overflows to inf; the second-moment statistics keep the
    dtype's largest finite value instead (as step counters saturate), so they
    stay finite and decay back at their rate. NaN stays NaN.
    """
    return jnp.minimum(x, jnp.finfo(dtype).max.astype(x.dtype))


def root_of_max(dtype) -> float:
    """``sqrt`` of the largest finite value of ``dtype``, a little below, as a Python float."""
    return math.sqrt(float(jnp.finfo(dtype).max)) * (1 - 2**-20)


def one_minus(decay, like):
    """``1 - decay`` as a scalar of ``like``'s dtype, computed in double for Python numbers."""
    if isinstance(decay, (int, float)):
        return 1.0 - decay
    return 1 - hyper(decay, like)


def one_minus_power(decay, count, like):
    """``1 - decay ** count`` in ``like``'s dtype, accurate when ``decay`` is close to 1.

    Evaluated as ``-expm1(count * log(decay))``; for a Python ``decay`` the
    logarithm is taken in double precision, so float32 keeps ~7 digits of the
    small difference instead of those left after rounding ``decay`` itself.
    """
    dtype = jnp.result_type(like)
    t = jnp.asarray(count).astype(dtype)
    if isinstance(decay, (int, float)):
        if decay == 0:
            return jnp.ones([], dtype)
        return -jnp.expm1(t * math.log(decay))
    d = hyper(decay, like)
    return jnp.where(d == 0, jnp.ones([], dtype), -jnp.expm1(t * jnp.log(d)))


def state_zeros(params, dtype):
    """Zeros shaped like ``params``, stored in ``dtype`` (None: each leaf's dtype)."""
    return zeros_like(params, dtype)


# ----------------------------------------------------------------------------
# ema


class EmaState(NamedTuple):
    """State of :func:`ema`: the moving average of the updates."""

    ema: PyTree


def _ema_init(params, *, decay, dtype):
    del decay
    return EmaState(ema=state_zeros(params, dtype))


def _ema_leaf(u, m, decay):
    c = wider(u.dtype, m.dtype)
    uc, mc = u.astype(c), m.astype(c)
    new = hyper(decay, uc) * mc + one_minus(decay, uc) * uc
    return new


def _ema_update(updates, state, params=None, *, decay, dtype, **extra):
    del params, extra, dtype
    new = tree_map(lambda u, m: _ema_leaf(u, m, decay), updates, state.ema)
    out = jax.tree.map(lambda n, u: n.astype(u.dtype), new, updates)
    stored = jax.tree.map(lambda n, m: n.astype(m.dtype), new, state.ema)
    return out, EmaState(ema=stored)


def ema(decay, *, dtype=None) -> GradientTransformation:
    """Exponential moving average of the incoming updates: ``m = decay*m + (1-decay)*u``.

    Outputs ``m`` (not bias corrected; follow with :func:`bias_correction`).
    This is Adam's first moment; see :func:`gradopt.adam` for the full rule.

    Args:
      decay: the decay rate in [0, 1) (Adam's ``b1``).
      dtype: storage dtype of ``m`` (None: each leaf's own dtype). Arithmetic
        is done in float32 or wider whatever the storage.

    Returns:
      A gradient transformation with state :class:`EmaState`.
    """
    check_decay("gradopt.ema", "decay", decay)
    check_dtype("gradopt.ema", dtype)
    return transform(_ema_init, _ema_update, decay=decay, dtype=dtype)


def _ema_sq_update(updates, state, params=None, *, decay, dtype, **extra):
    del params, dtype
    grads = extra.get("grads", updates)

    def leaf(g, v):
        c = wider(g.dtype, v.dtype)
        gc, vc = g.astype(c), v.astype(c)
        new = hyper(decay, gc) * vc + one_minus(decay, gc) * saturate(gc * gc, v.dtype)
        return saturate(new, v.dtype)

    check_same_structure(updates, state.ema, what="updates", reference_what="state")
    new = tree_map(leaf, grads, state.ema, what="grads")
    out = jax.tree.map(lambda n, u: n.astype(u.dtype), new, updates)
    stored = jax.tree.map(lambda n, m: n.astype(m.dtype), new, state.ema)
    return out, EmaState(ema=stored)


def ema_of_squares(decay, *, dtype=None) -> GradientTransformation:
    """Exponential moving average of the squared gradient: ``v = decay*v + (1-decay)*g**2``.

    ``g`` is the gradient that entered the enclosing chain (the ``grads``
    keyword), or the incoming updates when used on its own. Outputs ``v``.

    Args:
      decay: the decay rate in [0, 1) (Adam's ``b2``).
      dtype: storage dtype of ``v`` (None: each leaf's own dtype).

    Returns:
      A gradient transformation with state :class:`EmaState`.
    """
    check_decay("gradopt.ema_of_squares", "decay", decay)
    check_dtype("gradopt.ema_of_squares", dtype)
    return transform(_ema_init, _ema_sq_update, decay=decay, dtype=dtype)


# ----------------------------------------------------------------------------
# bias correction


class BiasCorrectionState(NamedTuple):
    """State of :func:`bias_correction`: the number of updates seen."""

    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _bc_init(params, *, decay):
    del params, decay
    return BiasCorrectionState(count=zero_count())


def _bc_update(updates, state, params=None, *, decay, **extra):
    del params, extra
    count = increment(state.count)

    def leaf(u):
        c = as_compute(u)
        return (c / one_minus_power(decay, count, c)).astype(u.dtype)

    return jax.tree.map(leaf, updates), BiasCorrectionState(count=count)


def bias_correction(decay) -> GradientTransformation:
    """Divide the updates by ``1 - decay**t``, ``t`` the 1-based step.

    Removes the bias towards zero of a moving average started at zero (Kingma
    & Ba, 2015, section 3). Usable after any moving average; the correction is
    computed in float32 even for bfloat16 updates (float64 for float64).

    Args:
      decay: the decay rate of the moving average before it, in [0, 1).

    Returns:
      A gradient transformation with state :class:`BiasCorrectionState`.
    """
    check_decay("gradopt.bias_correction", "decay", decay)
    return transform(_bc_init, _bc_update, decay=decay)


# ----------------------------------------------------------------------------
# Nadam's numerator


class NesterovEmaState(NamedTuple):
    """State of :func:`scale_by_nesterov_ema`.

    Attributes:
      ema: the moving average ``m`` of the updates.
      mu_product: the product of the momentum coefficients ``mu_1 ... mu_t``.
      count: the number of updates seen.
    """

    ema: PyTree
    mu_product: jax.Array
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _scalar_dtype():
    """float64 when 64-bit mode is on, else float32."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _nesterov_init(params, *, b1, momentum_decay, dtype):
    del b1, momentum_decay
    return NesterovEmaState(
        ema=state_zeros(params, dtype),
        mu_product=jnp.ones([], _scalar_dtype()),
        count=zero_count(),
    )


def _mu(b1, momentum_decay, t, like):
    """The momentum coefficient ``mu_t`` of step ``t`` (a float array)."""
    b = hyper(b1, like)
    if momentum_decay is None:
        return b * jnp.ones([], jnp.result_type(like))
    md = hyper(momentum_decay, like)
    return b * (1 - 0.5 * jnp.power(0.96, t * md))


def _nesterov_update(updates, state, params=None, *, b1, momentum_decay, dtype, **extra):
    del params, extra, dtype
    count = increment(state.count)
    p = state.mu_product
    t = count.astype(p.dtype)
    mu_t = _mu(b1, momentum_decay, t, p)
    mu_next = _mu(b1, momentum_decay, t + 1, p)
    prod_t = p * mu_t
    prod_next = prod_t * mu_next
    coef_m = mu_next / (1 - prod_next)
    coef_g = (1 - mu_t) / (1 - prod_t)

    def output(u, n):
        c = n.dtype
        return (coef_m.astype(c) * n + coef_g.astype(c) * u.astype(c)).astype(u.dtype)

    new = tree_map(lambda u, m: _ema_leaf(u, m, b1), updates, state.ema)
    out = jax.tree.map(output, updates, new)
    stored = jax.tree.map(lambda n, m: n.astype(m.dtype), new, state.ema)
    return out, NesterovEmaState(ema=stored, mu_product=prod_t, count=count)


def scale_by_nesterov_ema(
    b1, *, momentum_decay: float | None = 0.004, dtype=None
) -> GradientTransformation:
    """Nadam's bias-corrected Nesterov momentum (Dozat, 2016).

    With ``m = b1*m + (1-b1)*u`` and the momentum schedule
    ``mu_t = b1 * (1 - 0.5 * 0.96**(t * momentum_decay))`` it outputs::

        mu_{t+1} * m / (1 - prod_{i<=t+1} mu_i) + (1 - mu_t) * u / (1 - prod_{i<=t} mu_i)

    ``momentum_decay=None`` uses the constant ``mu_t = b1`` (so the products
    are ``b1**t``), the form optax implements. The full rule is on
    :func:`gradopt.nadam`.

    Args:
      b1: the decay rate of ``m``, in [0, 1).
      momentum_decay: the schedule's rate (0.004, i.e. ``t/250`` in the paper),
        or None for a constant momentum. Keyword only.
      dtype: storage dtype of ``m`` (None: each leaf's own dtype).

    Returns:
      A gradient transformation with state :class:`NesterovEmaState`.

    References:
      Dozat, Incorporating Nesterov Momentum into Adam, ICLR workshop, 2016.
    """
    where = "gradopt.scale_by_nesterov_ema"
    check_decay(where, "b1", b1)
    if momentum_decay is not None:
        check_scalar(
            where,
            "momentum_decay",
            momentum_decay,
            low=0.0,
            fix="Use 0.004 (the paper's schedule) or None for a constant momentum.",
        )
    check_dtype(where, dtype)
    return transform(
        _nesterov_init, _nesterov_update, b1=b1, momentum_decay=momentum_decay, dtype=dtype
    )
