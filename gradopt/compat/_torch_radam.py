"""``torch.optim.RAdam``: Adam with the variance rectification of Liu et al. (2020)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.compat._torch_common import (
    _assemble,
    _check_betas,
    _decoupled,
    _non_negative,
    _positive,
    _where,
)
from gradopt.core._chain import chain, divide
from gradopt.core._checks import check_flag, check_learning_rate
from gradopt.core._elementwise import Elementwise, elementwise
from gradopt.core._numerics import (
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
from gradopt.transforms._moments import bias_correction, ema
from gradopt.transforms._scale import scale_by_learning_rate

_NEVER = 2**31  # above every int32 step: the rectified branch is never taken


class TorchRectifiedRmsState(NamedTuple):
    """State of the rectified denominator: ``v`` and the number of updates seen."""

    v: Any
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _rho_double(t: int, b2: float) -> float:
    """``rho_t`` as torch computes it, in double precision."""
    return 2 / (1 - b2) - 1 - 2 * t * b2**t / (1 - b2**t)


def _first_rectified_step(b2: float) -> int:
    """The first step ``t`` with ``rho_t > 5`` (``rho_t`` grows with ``t``), by bisection."""
    if 2 / (1 - b2) - 1 <= 5 or _rho_double(_NEVER - 1, b2) <= 5:
        return _NEVER
    lo, hi = 1, _NEVER - 1  # rho_lo <= 5 < rho_hi, unless already rho_1 > 5
    if _rho_double(1, b2) > 5:
        return 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _rho_double(mid, b2) > 5 else (mid, hi)
    return hi


def _rho(t, b2):
    """``rho_t = rho_inf - 2 t b2**t / (1 - b2**t)`` without its cancellation, in float32.

    With ``x = 1 - b2``, ``L = -log b2`` and ``y = t L``::

        rho_t = (2 / x) * ((1 - x/L) + (x/L) * (1 - y / expm1(y))) - 1

    Both brackets are computed from series where they are small, so ``rho_t``
    keeps float32's relative precision (the direct form loses three digits).
    """
    dtype = scalar_dtype()
    t = jnp.asarray(t).astype(dtype)
    if isinstance(b2, (int, float)):
        x, log_b = 1.0 - b2, -math.log(b2)
        g = log_b / x - 1.0  # x/L = 1/(1+g)
    else:
        b2 = jnp.asarray(b2).astype(dtype)
        x = 1 - b2
        log_b = -jnp.log(b2)
        series = sum(x**k / (k + 1) for k in range(1, 8))
        g = jnp.where(x < 0.05, series, log_b / x - 1)
    c = 1 / (1 + g)
    one_minus_c = g / (1 + g)
    y = jnp.minimum(t * log_b, 80.0)  # beyond 80, y / expm1(y) is 0 in float32
    small = sum(y**k / math.factorial(k) for k in range(2, 13))  # expm1(y) - y
    e = jnp.expm1(y)
    f = jnp.where(y < 0.5, small, e - y) / e
    return (2 / x) * (one_minus_c + c * f) - 1


def _rect_init(params, *, b2, eps, switch):
    del b2, eps, switch
    return TorchRectifiedRmsState(v=state_zeros(params, None), count=zero_count())


def _rect_step(state, *, b2, eps, switch):
    del eps
    count = increment(state.count)
    like = jnp.ones([], scalar_dtype())
    rho_t = _rho(count, b2)
    rho_inf = 2 / one_minus(b2, like) - 1
    rect = jnp.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
    rectified = rho_t > 5 if switch is None else count >= switch
    factor = jnp.sqrt(one_minus_power(b2, count, like)) * jnp.where(rectified, rect, 1.0)
    return (rectified, factor), {"count": count}


def _rect_leaf(x, fields, ctx, p, *, b2, eps, switch):
    del p, switch
    rectified, factor = ctx
    v = hyper(b2, x) * fields["v"] + one_minus(b2, x) * saturate(x * x, x.dtype)
    v = saturate(v, x.dtype)
    denominator = (jnp.sqrt(v) + cast(eps, x)) / cast(factor, x)
    return jnp.where(rectified, denominator, jnp.ones_like(x)), {"v": v}


_RECT = Elementwise(
    "gradopt.compat.torch.radam's rectified denominator",
    _rect_init,
    _rect_step,
    _rect_leaf,
    ("v",),
)


def _torch_rectified_rms(b2, eps):
    """The divisor of RAdam's bias-corrected first moment, as torch computes it.

    ``(sqrt(v) + eps) / (sqrt(1 - b2**t) * r_t)`` while ``rho_t > 5``, else 1
    (the step is then momentum SGD), with ``v`` the moving average of ``g**2``.
    """
    switch = _first_rectified_step(float(b2)) if isinstance(b2, (int, float)) else None
    return elementwise(_RECT, b2=b2, eps=eps, switch=switch)


def radam(
    lr=0.001,
    betas=(0.9, 0.999),
    eps=1e-08,
    weight_decay=0,
    decoupled_weight_decay=False,
    *,
    maximize=False,
):
    """``torch.optim.RAdam``: Adam whose adaptive step is switched on once its variance is finite.

    With ``g`` the gradient (negated if ``maximize``), plus ``weight_decay * w``
    unless ``decoupled_weight_decay``, ``(b1, b2) = betas``, ``t`` the step and
    ``rho_inf = 2 / (1 - b2) - 1``::

        m     = b1 * m + (1 - b1) * g
        v     = b2 * v + (1 - b2) * g**2
        rho_t = rho_inf - 2 t b2**t / (1 - b2**t)
        r_t   = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        w     = w * (1 - lr * weight_decay)                       (decoupled only)
        w     = w - lr * m / (1 - b1**t) * r_t * sqrt(1 - b2**t) / (sqrt(v) + eps)
                                                                  if rho_t > 5
        w     = w - lr * m / (1 - b1**t)                          otherwise

    Chain: ``divide(chain(ema(b1), bias_correction(b1)), <rectified
    denominator>)``, the decoupled ``add_decayed_weights`` if any,
    ``scale_by_learning_rate(lr)``. For a Python ``b2`` the first rectified
    step is found in double precision at construction, so the switch happens at
    the very step torch switches; ``rho_t`` itself is evaluated in float32 in a
    form without cancellation.

    Args:
      lr: >= 0 (or a schedule). betas: each in [0, 1). eps: > 0 (torch accepts 0).
      weight_decay: >= 0.
      decoupled_weight_decay: AdamW-style decay ``w *= 1 - lr * weight_decay``
        instead of L2 on the gradient.
      maximize: ascend instead of descend.

    Returns:
      A gradient transformation.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradopt.compat import torch as torch_compat
      >>> opt = torch_compat.radam(lr=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, _ = opt.update({"w": jnp.array([0.5, -0.5])}, opt.init(params), params)
      >>> [round(float(x), 6) for x in updates["w"]]  # rho_1 = 1: momentum SGD
      [-0.05, 0.05]

    Note:
      torch adds ``eps`` to ``sqrt(v)`` before the bias correction of ``v``
      (as if ``eps * sqrt(1 - b2**t)`` after it); optax's ``radam`` adds it to
      the root of the bias-corrected ``v`` and switches at ``rho_t >= 5``
      (``threshold=5``), torch and this function at ``rho_t > 5``.

    References:
      Liu, Jiang, He, Chen, Liu, Gao and Han, On the Variance of the Adaptive
      Learning Rate and Beyond, ICLR 2020, arXiv:1908.03265.
    """
    where = _where("radam")
    check_learning_rate(where, lr, "lr")
    _positive(where, "eps", eps)
    b1, b2 = _check_betas(where, betas)
    _non_negative(where, "weight_decay", weight_decay)
    check_flag(where, "decoupled_weight_decay", decoupled_weight_decay)
    check_flag(where, "maximize", maximize)
    rule = [
        divide(chain(ema(b1), bias_correction(b1)), _torch_rectified_rms(b2, eps)),
        *_decoupled(weight_decay, decoupled_weight_decay, lr),
        scale_by_learning_rate(lr),
    ]
    return _assemble(
        rule, weight_decay=weight_decay, maximize=maximize, coupled=not decoupled_weight_decay
    )
