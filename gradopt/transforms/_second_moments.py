"""Second-moment statistics beyond Adam's: RAdam's rectified denominator,
AdaBelief's belief in the gradient, Yogi's additive second moment.

The update rules are written out on the named optimizers
(:func:`gradopt.radam`, :func:`gradopt.adabelief`, :func:`gradopt.yogi`).
Squares are taken of inputs clipped where they would overflow, so the
statistics stay finite for any finite gradient (``docs/guarantees.md``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation
from gradopt.core._checks import check_decay, check_eps, check_flag, check_scalar
from gradopt.core._elementwise import Elementwise, elementwise
from gradopt.core._numerics import (
    abs_sq,
    cast,
    clamp,
    div_real,
    full_like,
    hyper,
    increment,
    is_complex,
    mul_real,
    one_minus,
    one_minus_power,
    real_like,
    root_of_max,
    saturate,
    scalar_dtype,
    state_zeros,
    zero_count,
)

PyTree = Any


def square(x):
    """``x**2``, with ``x`` clipped first where its square would overflow.

    A complex ``x`` gives the real ``|x|**2``, saturating at the largest finite value.
    """
    if is_complex(x.dtype):
        x2 = abs_sq(x)
        return saturate(x2, x2.dtype)
    x = clamp(x, root_of_max(x.dtype))
    return x * x


def check_eps_root(where, eps_root):
    check_scalar(where, "eps_root", eps_root, low=0.0, fix="eps_root is >= 0; 0.0 switches it off.")


def _corrections(b, count):
    """``1 / (1 - b**t)`` in the scalar dtype."""
    return 1 / one_minus_power(b, count, jnp.ones([], scalar_dtype()))


def nesterov_coefficients(b1, count):
    """``(b1 / (1 - b1**(t+1)), (1 - b1) / (1 - b1**t))``: the Nesterov form of ``m_hat``."""
    like = jnp.ones([], scalar_dtype())
    return (
        hyper(b1, like) / one_minus_power(b1, increment(count), like),
        one_minus(b1, like) / one_minus_power(b1, count, like),
    )


# ----------------------------------------------------------------------------
# RAdam


class RectifiedState(NamedTuple):
    """State of :func:`rectified_root_mean_square`: ``v`` and the step count."""

    nu: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _rect_init(params, *, b2, eps, eps_root, threshold):
    del b2, eps, eps_root, threshold
    return RectifiedState(nu=state_zeros(params, None, real=True), count=zero_count())


def _rect_step(state, *, b2, eps, eps_root, threshold):
    del eps, eps_root
    count = increment(state.count)
    like = jnp.ones([], scalar_dtype())
    c2 = one_minus_power(b2, count, like)  # 1 - b2**t
    rho_inf = 2 / one_minus(b2, like) - 1
    rho = rho_inf - 2 * count.astype(like.dtype) * (1 - c2) / c2
    on = (rho >= hyper(threshold, like)) & (rho > 4)  # r_t is real for rho_t > 4 only
    safe = jnp.where(on, rho, 5 * jnp.ones_like(rho))
    r = jnp.sqrt((safe - 4) * (safe - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * safe))
    scale = jnp.where(on, 1 / r, jnp.zeros_like(r))  # d / r when rectified ...
    offset = jnp.where(on, jnp.zeros_like(r), jnp.ones_like(r))  # ... else 1
    return (1 / c2, scale, offset), {"count": count}


def _rect_leaf(x, fields, ctx, p, *, b2, eps, eps_root, threshold):
    del p, threshold
    inverse, scale, offset = ctx
    r = real_like(x)  # the real statistics of a complex x are real
    nu = hyper(b2, r) * fields["nu"] + one_minus(b2, r) * square(x)  # convex: finite
    root = jnp.sqrt(saturate(nu * cast(inverse, r), nu.dtype) + hyper(eps_root, r)) + hyper(eps, r)
    return root * cast(scale, r) + cast(offset, r), {"nu": nu}


_RECT = Elementwise(
    "gradopt.rectified_root_mean_square", _rect_init, _rect_step, _rect_leaf, ("nu",)
)


def rectified_root_mean_square(
    b2=0.999, *, eps=1e-8, eps_root=0.0, threshold=5.0
) -> GradientTransformation:
    """RAdam's denominator: ``(sqrt(v_hat + eps_root) + eps) / r_t``, or 1 early on.

    ``v = b2*v + (1-b2)*g**2`` and ``v_hat = v / (1 - b2**t)`` as in Adam;
    with ``rho_inf = 2/(1-b2) - 1`` and ``rho_t = rho_inf - 2 t b2**t / (1 - b2**t)``
    the variance rectification is ``r_t = sqrt((rho_t-4)(rho_t-2) rho_inf /
    ((rho_inf-4)(rho_inf-2) rho_t))``. While ``rho_t < threshold`` the output
    is 1, so that :func:`gradopt.divide` leaves the numerator (SGD with
    momentum). The full rule is on :func:`gradopt.radam`.

    Args:
      b2: the decay rate of ``v``, in [0, 1).
      eps: > 0, outside the square root. Keyword only, like the rest.
      eps_root: >= 0, inside the square root.
      threshold: the smallest ``rho_t`` at which the adaptive step is used,
        >= 0; the step is never rectified for ``rho_t <= 4``, where ``r_t``
        is not real.

    Returns:
      A gradient transformation with state :class:`RectifiedState`.
    """
    where = "gradopt.rectified_root_mean_square"
    check_decay(where, "b2", b2)
    check_eps(where, eps)
    check_eps_root(where, eps_root)
    check_scalar(
        where,
        "threshold",
        threshold,
        low=0.0,
        fix="Use 5.0 (the authors' code) or 4.0 (the paper's algorithm).",
    )
    return elementwise(_RECT, b2=b2, eps=eps, eps_root=eps_root, threshold=threshold)


# ----------------------------------------------------------------------------
# AdaBelief


class BeliefState(NamedTuple):
    """State of :func:`scale_by_belief`: ``m``, ``s`` and the step count."""

    mu: PyTree
    nu: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _belief_init(params, *, b1, b2, eps, eps_root, nesterov):
    del b1, b2, eps, eps_root, nesterov
    return BeliefState(
        mu=state_zeros(params, None), nu=state_zeros(params, None, real=True), count=zero_count()
    )


def _belief_step(state, *, b1, b2, eps, eps_root, nesterov):
    del eps, eps_root
    count = increment(state.count)
    first = nesterov_coefficients(b1, count) if nesterov else _corrections(b1, count)
    return (first, _corrections(b2, count)), {"count": count}


def _belief_leaf(x, fields, ctx, p, *, b1, b2, eps, eps_root, nesterov):
    del p
    first, inverse2 = ctx
    r = real_like(x)  # s is real (|g - m|**2) for a complex x
    m = hyper(b1, x) * fields["mu"] + one_minus(b1, x) * x
    s = hyper(b2, r) * fields["nu"] + one_minus(b2, r) * square(x - m)
    s = saturate(s + hyper(eps_root, r), s.dtype)
    if nesterov:
        m_hat = mul_real(m, cast(first[0], r)) + mul_real(x, cast(first[1], r))
    else:
        m_hat = mul_real(m, cast(first, r))
    s_hat = saturate(s * cast(inverse2, r), s.dtype)
    return div_real(m_hat, jnp.sqrt(s_hat) + hyper(eps, r)), {"mu": m, "nu": s}


_BELIEF = Elementwise(
    "gradopt.scale_by_belief", _belief_init, _belief_step, _belief_leaf, ("mu", "nu")
)


def scale_by_belief(
    b1=0.9, b2=0.999, *, eps=1e-16, eps_root=1e-16, nesterov: bool = False
) -> GradientTransformation:
    """AdaBelief's scaling: ``m_hat / (sqrt(s_hat) + eps)``, ``s`` the EMA of ``(g - m)**2``.

    The full rule is on :func:`gradopt.adabelief`.

    Args:
      b1, b2: decay rates of ``m`` and ``s``, in [0, 1).
      eps: > 0, added to ``sqrt(s_hat)``. Keyword only, like the rest.
      eps_root: >= 0, added to ``s`` at every step (the paper's eps inside).
      nesterov: the Nesterov form of ``m_hat`` (as :func:`gradopt.nadamw`).

    Returns:
      A gradient transformation with state :class:`BeliefState`.
    """
    where = "gradopt.scale_by_belief"
    check_decay(where, "b1", b1)
    check_decay(where, "b2", b2)
    check_eps(where, eps)
    check_eps_root(where, eps_root)
    check_flag(where, "nesterov", nesterov)
    return elementwise(_BELIEF, b1=b1, b2=b2, eps=eps, eps_root=eps_root, nesterov=nesterov)


# ----------------------------------------------------------------------------
# Yogi


def _yogi_init(params, *, b1, b2, eps, eps_root, initial_accumulator_value):
    del b1, b2, eps, eps_root
    return BeliefState(
        mu=full_like(params, initial_accumulator_value),
        nu=full_like(params, initial_accumulator_value, real=True),
        count=zero_count(),
    )


def _yogi_step(state, *, b1, b2, eps, eps_root, initial_accumulator_value):
    del eps, eps_root, initial_accumulator_value
    count = increment(state.count)
    return (_corrections(b1, count), _corrections(b2, count)), {"count": count}


def _yogi_leaf(x, fields, ctx, p, *, b1, b2, eps, eps_root, initial_accumulator_value):
    del p, initial_accumulator_value
    inverse1, inverse2 = ctx
    m = hyper(b1, x) * fields["mu"] + one_minus(b1, x) * x
    # g**2 <= max/2, so v + (1-b2) g**2 < 2 g**2 stays finite with no saturation of the
    # state (which made XLA:CPU recompute it in the parameter's loop)
    r = real_like(x)  # v is real (|g|**2) for a complex x
    g = clamp(x, root_of_max(r.dtype) * 0.5**0.5)
    g2 = abs_sq(g)
    v = fields["nu"]
    v = v - one_minus(b2, r) * jnp.sign(v - g2) * g2
    root = jnp.sqrt(saturate(v * cast(inverse2, r), v.dtype) + hyper(eps_root, r))
    return div_real(mul_real(m, cast(inverse1, r)), root + hyper(eps, r)), {"mu": m, "nu": v}


_YOGI = Elementwise("gradopt.scale_by_yogi", _yogi_init, _yogi_step, _yogi_leaf, ("mu", "nu"))


def scale_by_yogi(
    b1=0.9, b2=0.999, *, eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6
) -> GradientTransformation:
    """Yogi's scaling: Adam's, with ``v = v - (1-b2) * sign(v - g**2) * g**2``.

    The full rule is on :func:`gradopt.yogi`.

    Args:
      b1, b2: decay rates, in [0, 1).
      eps: > 0, outside the square root. Keyword only, like the rest.
      eps_root: >= 0, inside the square root.
      initial_accumulator_value: the starting value of ``m`` and ``v``, >= 0.

    Returns:
      A gradient transformation with state :class:`BeliefState` (``mu``, ``nu``).
    """
    where = "gradopt.scale_by_yogi"
    check_decay(where, "b1", b1)
    check_decay(where, "b2", b2)
    check_eps(where, eps)
    check_eps_root(where, eps_root)
    check_scalar(
        where,
        "initial_accumulator_value",
        initial_accumulator_value,
        low=0.0,
        fix="Use 1e-6 (optax, TensorFlow Addons) or 0.0 (the paper).",
    )
    return elementwise(
        _YOGI,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        initial_accumulator_value=initial_accumulator_value,
    )
