"""``torch.optim.SparseAdam``: Adam that updates only the coordinates a gradient touches."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.compat._torch_common import _assemble, _check_betas, _positive, _where
from gradopt.core._checks import check_flag, check_learning_rate, check_scalar
from gradopt.core._elementwise import Elementwise, elementwise
from gradopt.core._numerics import (
    cast,
    increment,
    one_minus,
    one_minus_power,
    saturate,
    scalar_dtype,
    state_zeros,
    zero_count,
)
from gradopt.transforms._scale import scale_by_learning_rate


class TorchSparseAdamState(NamedTuple):
    """State of :func:`sparse_adam`'s rule: the two moments and the step count."""

    m: Any
    v: Any
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _sparse_init(params, *, b1, b2, eps):
    del b1, b2, eps
    return TorchSparseAdamState(
        m=state_zeros(params, None), v=state_zeros(params, None), count=zero_count()
    )


def _sparse_step(state, *, b1, b2, eps):
    del eps
    count = increment(state.count)
    like = jnp.ones([], scalar_dtype())
    factor = jnp.sqrt(one_minus_power(b2, count, like)) / one_minus_power(b1, count, like)
    return factor, {"count": count}


def _sparse_leaf(x, fields, ctx, p, *, b1, b2, eps):
    del p
    present = x != 0
    m, v = fields["m"], fields["v"]
    m_new = m + (x - m) * one_minus(b1, x)
    v_new = saturate(v + (saturate(x * x, x.dtype) - v) * one_minus(b2, x), x.dtype)
    step = cast(ctx, x) * (m_new / (jnp.sqrt(v_new) + cast(eps, x)))
    zero = jnp.zeros_like(x)
    return jnp.where(present, step, zero), {
        "m": jnp.where(present, m_new, m),
        "v": jnp.where(present, v_new, v),
    }


_SPARSE = Elementwise(
    "gradopt.compat.torch.sparse_adam's rule", _sparse_init, _sparse_step, _sparse_leaf, ("m", "v")
)


def sparse_adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, maximize=False):
    """``torch.optim.SparseAdam``: Adam on the coordinates whose gradient is not zero.

    With ``g`` the gradient (negated if ``maximize``), ``t`` the step (counted
    on every step, as torch counts it) and ``S`` the coordinates where
    ``g != 0``::

        m[S] = m[S] + (1 - b1) * (g[S] - m[S])
        v[S] = v[S] + (1 - b2) * (g[S]**2 - v[S])
        w[S] = w[S] - lr * sqrt(1 - b2**t) / (1 - b1**t) * m[S] / (sqrt(v[S]) + eps)

    and nothing changes outside ``S``. JAX has no sparse gradients: a gradient
    entry that is exactly zero is taken to be absent, which is what torch does
    with a COO gradient that stores the non-zero entries (an embedding's rows
    that the batch did not use). One elementwise stage, then
    ``scale_by_learning_rate(lr)``.

    Args:
      lr: > 0 (torch refuses 0), or a schedule. betas: each in [0, 1).
      eps: > 0. maximize: ascend instead of descend.

    Returns:
      A gradient transformation with state ``(m, v, count)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradopt.compat import torch as torch_compat
      >>> opt = torch_compat.sparse_adam(lr=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, _ = opt.update({"w": jnp.array([3.0, 0.0])}, opt.init(params), params)
      >>> [round(float(x) + 0.0, 6) for x in updates["w"]]  # the zero entry is absent: no step
      [-0.1, 0.0]

    Note:
      A gradient that is zero by coincidence (not by sparsity) is skipped too;
      dense Adam (:func:`adam`) would still decay its moments and move it.
      optax and Keras have no SparseAdam.

    References:
      Kingma and Ba, Adam: A Method for Stochastic Optimization, ICLR 2015,
      arXiv:1412.6980.
    """
    where = _where("sparse_adam")
    check_learning_rate(where, lr, "lr")
    if not callable(lr):
        check_scalar(where, "lr", lr, low=0.0, low_open=True, fix="torch.optim requires lr > 0.")
    _positive(where, "eps", eps)
    b1, b2 = _check_betas(where, betas)
    check_flag(where, "maximize", maximize)
    rule = [elementwise(_SPARSE, b1=b1, b2=b2, eps=eps), scale_by_learning_rate(lr)]
    return _assemble(rule, weight_decay=0, maximize=maximize, coupled=False)
