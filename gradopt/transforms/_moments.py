"""Moment estimates: moving averages of g and g^2, bias correction, Nadam's numerator.

These are the building blocks of Adam and its relatives (the update rules are
written out on :func:`gradopt.adam`, :func:`gradopt.nadam` and friends). Every
stage stores its state in a fixed dtype and computes in float32 or wider.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation
from gradopt.core._checks import check_decay, check_dtype, check_scalar
from gradopt.core._elementwise import Elementwise, elementwise, no_step
from gradopt.core._numerics import (
    abs_sq,
    cast,
    hyper,
    increment,
    one_minus,
    one_minus_power,
    saturate,
    scalar_dtype,
    state_zeros,
    zero_count,
)

PyTree = Any


# ----------------------------------------------------------------------------
# ema and ema_of_squares


class EmaState(NamedTuple):
    """State of :func:`ema` and :func:`ema_of_squares`: the moving average."""

    ema: PyTree


def _ema_init(params, *, decay, dtype):
    del decay
    return EmaState(ema=state_zeros(params, dtype))


def _ema_sq_init(params, *, decay, dtype):
    del decay
    return EmaState(ema=state_zeros(params, dtype, real=True))


def _ema_leaf(x, fields, ctx, p, *, decay, dtype):
    del ctx, p, dtype
    m = hyper(decay, x) * fields["ema"] + one_minus(decay, x) * x
    return m, {"ema": m}


def _ema_sq_leaf(x, fields, ctx, p, *, decay, dtype):
    del ctx, p, dtype
    x2 = abs_sq(x)  # x**2, or |x|**2 = x * conj(x) for complex x
    v = hyper(decay, x2) * fields["ema"] + one_minus(decay, x2) * saturate(x2, x2.dtype)
    v = saturate(v, x2.dtype)
    return v, {"ema": v}


_EMA = Elementwise("gradopt.ema", _ema_init, no_step, _ema_leaf, ("ema",))
_EMA_SQ = Elementwise("gradopt.ema_of_squares", _ema_sq_init, no_step, _ema_sq_leaf, ("ema",))


def ema(decay, *, dtype=None) -> GradientTransformation:
    """Exponential moving average of the incoming updates: ``m = decay*m + (1-decay)*u``.

    Outputs ``m`` (not bias corrected; follow with :func:`bias_correction`).
    This is Adam's first moment; see :func:`gradopt.adam` for the full rule.
    For complex updates ``m`` is complex.

    Args:
      decay: the decay rate in [0, 1) (Adam's ``b1``).
      dtype: storage dtype of ``m`` (None: each leaf's own dtype). Arithmetic
        is done in float32 or wider whatever the storage. For a complex leaf
        it sets the precision of the complex storage (bfloat16 and float32:
        complex64; float64: complex128).

    Returns:
      A gradient transformation with state :class:`EmaState`.
    """
    check_decay("gradopt.ema", "decay", decay)
    check_dtype("gradopt.ema", dtype)
    return elementwise(_EMA, decay=decay, dtype=dtype)


def ema_of_squares(decay, *, dtype=None) -> GradientTransformation:
    """Exponential moving average of the squared updates: ``v = decay*v + (1-decay)*u**2``.

    Outputs ``v``. Like every stage it reads only its input: to build ``v``
    from the gradient next to another statistic of it, put both in a
    :func:`gradopt.branch`. For complex updates ``u**2`` is ``|u|**2 = u *
    conj(u)`` and ``v`` is real, stored in the parameter's real dtype.

    Args:
      decay: the decay rate in [0, 1) (Adam's ``b2``).
      dtype: storage dtype of ``v`` (None: each leaf's own real dtype).

    Returns:
      A gradient transformation with state :class:`EmaState`.
    """
    check_decay("gradopt.ema_of_squares", "decay", decay)
    check_dtype("gradopt.ema_of_squares", dtype)
    return elementwise(_EMA_SQ, decay=decay, dtype=dtype)


# ----------------------------------------------------------------------------
# bias correction


class BiasCorrectionState(NamedTuple):
    """State of :func:`bias_correction`: the number of updates seen."""

    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _bc_init(params, *, decay):
    del params, decay
    return BiasCorrectionState(count=zero_count())


def _bc_step(state, *, decay):
    count = increment(state.count)
    like = jnp.ones([], scalar_dtype())
    return 1 / one_minus_power(decay, count, like), {"count": count}


def _bc_leaf(x, fields, ctx, p, *, decay):
    del fields, p, decay
    return x * cast(ctx, x), {}


_BC = Elementwise("gradopt.bias_correction", _bc_init, _bc_step, _bc_leaf)


def bias_correction(decay) -> GradientTransformation:
    """Divide the updates by ``1 - decay**t``, ``t`` the 1-based step.

    Removes the bias towards zero of a moving average started at zero (Kingma
    & Ba, 2015, section 3). Usable after any moving average. The factor
    ``1 / (1 - decay**t)`` is computed once per step in float32 (float64 with
    64-bit mode on), even for bfloat16 updates, and multiplies every leaf.

    Args:
      decay: the decay rate of the moving average before it, in [0, 1).

    Returns:
      A gradient transformation with state :class:`BiasCorrectionState`.
    """
    check_decay("gradopt.bias_correction", "decay", decay)
    return elementwise(_BC, decay=decay)


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


def _nesterov_init(params, *, b1, momentum_decay, dtype):
    del b1, momentum_decay
    return NesterovEmaState(
        ema=state_zeros(params, dtype),
        mu_product=jnp.ones([], scalar_dtype()),
        count=zero_count(),
    )


def _mu(b1, momentum_decay, t, like):
    """The momentum coefficient ``mu_t`` of step ``t`` (a float array)."""
    b = hyper(b1, like)
    if momentum_decay is None:
        return b * jnp.ones([], jnp.result_type(like))
    md = hyper(momentum_decay, like)
    return b * (1 - 0.5 * jnp.power(0.96, t * md))


def _nesterov_step(state, *, b1, momentum_decay, dtype):
    del dtype
    count = increment(state.count)
    p = state.mu_product
    t = count.astype(p.dtype)
    mu_t = _mu(b1, momentum_decay, t, p)
    mu_next = _mu(b1, momentum_decay, t + 1, p)
    prod_t = p * mu_t
    coef_m = mu_next / (1 - prod_t * mu_next)
    coef_g = (1 - mu_t) / (1 - prod_t)
    return (coef_m, coef_g), {"mu_product": prod_t, "count": count}


def _nesterov_leaf(x, fields, ctx, p, *, b1, momentum_decay, dtype):
    del p, momentum_decay, dtype
    coef_m, coef_g = ctx
    m = hyper(b1, x) * fields["ema"] + one_minus(b1, x) * x
    return cast(coef_m, x) * m + cast(coef_g, x) * x, {"ema": m}


_NESTEROV = Elementwise(
    "gradopt.scale_by_nesterov_ema", _nesterov_init, _nesterov_step, _nesterov_leaf, ("ema",)
)


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
    return elementwise(_NESTEROV, b1=b1, momentum_decay=momentum_decay, dtype=dtype)
