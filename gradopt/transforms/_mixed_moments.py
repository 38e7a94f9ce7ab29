"""Moments that mix several statistics: Adan's gradient differences, ADOPT's
delayed second moment, AdEMAMix's two momenta.

The update rules are written out on the named optimizers (:func:`gradopt.adan`,
:func:`gradopt.adopt`, :func:`gradopt.ademamix`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation
from gradopt.core._checks import check_decay, check_dtype, check_eps, check_flag, check_scalar
from gradopt.core._elementwise import Elementwise, elementwise
from gradopt.core._numerics import (
    cast,
    div_real,
    hyper,
    increment,
    is_complex,
    mul_real,
    one_minus,
    one_minus_power,
    real_like,
    saturate,
    scalar_dtype,
    state_zeros,
    zero_count,
)
from gradopt.transforms._real_only import real_only
from gradopt.transforms._second_moments import check_eps_root, square

PyTree = Any


def _inverse(b, count):
    return 1 / one_minus_power(b, count, jnp.ones([], scalar_dtype()))


# ----------------------------------------------------------------------------
# Adan


class AdanState(NamedTuple):
    """State of :func:`scale_by_adan`.

    Attributes:
      m: the EMA of the gradients.
      v: the EMA of the gradient differences ``g_t - g_{t-1}``.
      n: the EMA of ``(g_t + b2 * (g_t - g_{t-1}))**2``.
      previous: the previous gradient.
      count: the number of updates seen.
    """

    m: PyTree
    v: PyTree
    n: PyTree
    previous: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _adan_init(params, *, b1, b2, b3, eps, eps_root):
    del b1, b2, b3, eps, eps_root
    z = lambda: state_zeros(params, None)  # noqa: E731
    return AdanState(m=z(), v=z(), n=z(), previous=z(), count=zero_count())


def _adan_step(state, *, b1, b2, b3, eps, eps_root):
    del eps, eps_root
    count = increment(state.count)
    later = (state.count > 0).astype(scalar_dtype())  # no difference at the first step
    return (later, _inverse(b1, count), _inverse(b2, count), _inverse(b3, count)), {"count": count}


def _adan_leaf(x, fields, ctx, p, *, b1, b2, b3, eps, eps_root):
    del p
    later, i1, i2, i3 = ctx
    diff = (x - fields["previous"]) * cast(later, x)
    m = hyper(b1, x) * fields["m"] + one_minus(b1, x) * x
    v = hyper(b2, x) * fields["v"] + one_minus(b2, x) * diff
    n = hyper(b3, x) * fields["n"] + one_minus(b3, x) * square(x + hyper(b2, x) * diff)
    root = jnp.sqrt(saturate(n * cast(i3, x), x.dtype) + hyper(eps_root, x)) + hyper(eps, x)
    u = (m * cast(i1, x) + hyper(b2, x) * v * cast(i2, x)) / root
    return u, {"m": m, "v": v, "n": n, "previous": x}


_ADAN = Elementwise(
    "gradopt.scale_by_adan", _adan_init, _adan_step, _adan_leaf, ("m", "v", "n", "previous")
)


def scale_by_adan(b1=0.98, b2=0.92, b3=0.99, *, eps=1e-8, eps_root=1e-8) -> GradientTransformation:
    """Adan's scaling (Xie et al., 2022): Nesterov momentum from gradient differences.

    The full rule is on :func:`gradopt.adan`.

    Args:
      b1, b2, b3: decay rates of ``m``, ``v`` and ``n``, in [0, 1).
      eps: > 0, outside the square root. Keyword only, like ``eps_root``.
      eps_root: >= 0, inside the square root.

    Returns:
      A gradient transformation with state :class:`AdanState`.
    """
    where = "gradopt.scale_by_adan"
    for name, b in (("b1", b1), ("b2", b2), ("b3", b3)):
        check_decay(where, name, b)
    check_eps(where, eps)
    check_eps_root(where, eps_root)
    return real_only(
        elementwise(_ADAN, b1=b1, b2=b2, b3=b3, eps=eps, eps_root=eps_root),
        name="gradopt.scale_by_adan",
        reason="its gradient-difference moments are defined on real numbers (as optax.adan)",
    )


# ----------------------------------------------------------------------------
# ADOPT


class AdoptState(NamedTuple):
    """State of :func:`scale_by_adopt`: ``m``, ``v`` and the step count."""

    mu: PyTree
    nu: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def quarter_power(t):
    """``t**0.25``: ADOPT's default clipping bound at step ``t`` (0-based)."""
    return t**0.25


def _adopt_init(params, *, b1, b2, eps, nesterov, use_clipping, clip_value_fn, dtype):
    del b1, b2, eps, nesterov, use_clipping, clip_value_fn
    return AdoptState(
        mu=state_zeros(params, dtype), nu=state_zeros(params, None, real=True), count=zero_count()
    )


def _adopt_step(state, *, b1, b2, eps, nesterov, use_clipping, clip_value_fn, dtype):
    del b1, b2, eps, nesterov, dtype
    later = (state.count > 0).astype(scalar_dtype())
    bound = None
    if use_clipping:
        bound = jnp.asarray(clip_value_fn(state.count.astype(scalar_dtype())), scalar_dtype())
    return (later, bound), {"count": increment(state.count)}


def _adopt_leaf(x, fields, ctx, p, *, b1, b2, eps, nesterov, use_clipping, clip_value_fn, dtype):
    del p, clip_value_fn, dtype
    later, bound = ctx
    r = real_like(x)  # v is real (|g|**2) for a complex x, as are the decays
    later = cast(later, r)
    # The first step only initialises v = g**2 (b2 -> 0) and keeps m (b1 -> 1).
    b2_ = hyper(b2, r) * later
    b1_ = hyper(b1, r) * later + (1 - later)
    nu = b2_ * fields["nu"] + (1 - b2_) * square(x)  # convex: finite
    scaled = div_real(x, jnp.maximum(jnp.sqrt(fields["nu"]), hyper(eps, r)))
    if use_clipping:
        c = cast(bound, r)
        if is_complex(x.dtype):  # the modulus is clipped, the phase kept
            size = jnp.abs(scaled)
            scaled = mul_real(scaled, jnp.where(size > c, c / jnp.maximum(size, c), 1))
        else:
            scaled = jnp.minimum(jnp.maximum(scaled, -c), c)
    m = mul_real(fields["mu"], b1_) + mul_real(scaled, 1 - b1_)
    out = mul_real(m, b1_) + mul_real(scaled, 1 - b1_) if nesterov else m
    return out, {"mu": m, "nu": nu}


_ADOPT = Elementwise("gradopt.scale_by_adopt", _adopt_init, _adopt_step, _adopt_leaf, ("mu", "nu"))


def scale_by_adopt(
    b1=0.9,
    b2=0.9999,
    *,
    eps=1e-6,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn=quarter_power,
    dtype=None,
) -> GradientTransformation:
    """ADOPT's scaling: the gradient normalised by the *previous* second moment, then averaged.

    The full rule is on :func:`gradopt.adopt`.

    Args:
      b1, b2: decay rates of ``m`` and ``v``, in [0, 1).
      eps: > 0, the smallest denominator. Keyword only, like the rest.
      nesterov: output ``b1*m + (1-b1)*clip(g / max(sqrt(v), eps))``.
      use_clipping: clip the normalised gradient to ``[-c_t, c_t]``.
      clip_value_fn: ``c_t`` as a function of the 0-based step (``t**0.25``).
      dtype: storage dtype of ``m`` (None: each leaf's dtype).

    Returns:
      A gradient transformation with state :class:`AdoptState`.
    """
    where = "gradopt.scale_by_adopt"
    check_decay(where, "b1", b1)
    check_decay(where, "b2", b2)
    check_eps(where, eps)
    check_flag(where, "nesterov", nesterov)
    check_flag(where, "use_clipping", use_clipping)
    if not callable(clip_value_fn):
        raise TypeError(
            f"{where}: clip_value_fn must be a function of the step, got {clip_value_fn!r}. "
            "Pass e.g. gradopt.quarter_power (the paper's t**0.25)."
        )
    check_dtype(where, dtype)
    return elementwise(
        _ADOPT,
        b1=b1,
        b2=b2,
        eps=eps,
        nesterov=nesterov,
        use_clipping=use_clipping,
        clip_value_fn=clip_value_fn,
        dtype=dtype,
    )


# ----------------------------------------------------------------------------
# AdEMAMix


class AdemamixState(NamedTuple):
    """State of :func:`scale_by_ademamix`: the fast and slow momenta, ``v``, the count."""

    m1: PyTree
    m2: PyTree
    nu: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _mix_init(params, *, b1, b2, b3, alpha, eps, eps_root, dtype):
    del b1, b2, b3, alpha, eps, eps_root
    z = lambda: state_zeros(params, dtype)  # noqa: E731
    nu = state_zeros(params, dtype, real=True)  # |g|**2: real for complex parameters
    return AdemamixState(m1=z(), m2=z(), nu=nu, count=zero_count())


def _mix_step(state, *, b1, b2, b3, alpha, eps, eps_root, dtype):
    del eps, eps_root, dtype
    like = jnp.ones([], scalar_dtype())
    b3_t = b3(state.count) if callable(b3) else b3
    alpha_t = alpha(state.count) if callable(alpha) else alpha
    count = increment(state.count)
    ctx = (_inverse(b1, count), _inverse(b2, count), hyper(b3_t, like), hyper(alpha_t, like))
    return ctx, {"count": count}


def _mix_leaf(x, fields, ctx, p, *, b1, b2, b3, alpha, eps, eps_root, dtype):
    del p, b3, alpha, dtype
    r = real_like(x)  # nu is real (|g|**2) for a complex x, as are the scalars
    i1, i2, b3_t, alpha_t = (cast(c, r) for c in ctx)
    m1 = hyper(b1, x) * fields["m1"] + one_minus(b1, x) * x
    m2 = mul_real(fields["m2"], b3_t) + mul_real(x, 1 - b3_t)
    # a convex combination of finite values: no saturation of the state (which made
    # XLA:CPU recompute it in the parameter's loop, one more array pass)
    nu = hyper(b2, r) * fields["nu"] + one_minus(b2, r) * square(x)
    root = jnp.sqrt(saturate(nu * i2, nu.dtype) + hyper(eps_root, r)) + hyper(eps, r)
    step = mul_real(m1, i1) + mul_real(m2, alpha_t)
    return div_real(step, root), {"m1": m1, "m2": m2, "nu": nu}


_MIX = Elementwise("gradopt.scale_by_ademamix", _mix_init, _mix_step, _mix_leaf, ("m1", "m2", "nu"))


def scale_by_ademamix(
    b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, *, eps=1e-8, eps_root=0.0, dtype=None
) -> GradientTransformation:
    """AdEMAMix's scaling: ``(m1_hat + alpha * m2) / (sqrt(v_hat + eps_root) + eps)``.

    ``m1`` is Adam's first moment (decay ``b1``, bias corrected), ``m2`` a slow
    one (decay ``b3``, not bias corrected). The full rule is on :func:`gradopt.ademamix`.

    Args:
      b1, b2: decay rates of ``m1`` and ``v``, in [0, 1).
      b3: decay rate of ``m2``, in [0, 1), or a schedule of the 0-based step.
      alpha: weight of ``m2``, >= 0, or a schedule of the 0-based step.
      eps: > 0, outside the square root. Keyword only, like the rest.
      eps_root: >= 0, inside the square root.
      dtype: storage dtype of ``m1``, ``m2`` and ``v`` (None: each leaf's dtype).

    Returns:
      A gradient transformation with state :class:`AdemamixState`.
    """
    where = "gradopt.scale_by_ademamix"
    check_decay(where, "b1", b1)
    check_decay(where, "b2", b2)
    if not callable(b3):
        check_decay(where, "b3", b3)
    if not callable(alpha):
        check_scalar(where, "alpha", alpha, low=0.0, fix="The paper uses alpha between 4 and 10.")
    check_eps(where, eps)
    check_eps_root(where, eps_root)
    check_dtype(where, dtype)
    return elementwise(
        _MIX, b1=b1, b2=b2, b3=b3, alpha=alpha, eps=eps, eps_root=eps_root, dtype=dtype
    )
