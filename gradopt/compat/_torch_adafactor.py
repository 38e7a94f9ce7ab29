"""``torch.optim.Adafactor``: factored second moments with torch's conventions."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.compat._torch_common import _assemble, _non_negative, _where
from gradopt.core._base import transform, tree_map
from gradopt.core._checks import check_gradients, check_learning_rate, check_scalar
from gradopt.core._numerics import as_compute, increment, saturate, zero_count


class TorchAdafactorState(NamedTuple):
    """State of :func:`adafactor`'s rule.

    Attributes:
      row_var: per leaf of 2 or more dimensions, the mean of ``g**2`` over the
        last dimension, shape ``(..., R, 1)``; an empty array for the others.
      col_var: the mean over the second-to-last dimension, ``(..., 1, C)``.
      variance: per scalar or vector leaf, the moving average of ``g**2``;
        an empty array for factored leaves.
      count: the number of steps taken.
    """

    row_var: Any
    col_var: Any
    variance: Any
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _empty(p):
    return jnp.zeros((0,), jnp.result_type(p))


def _factored(p) -> bool:
    return jnp.ndim(p) > 1


def _row_shape(p):
    return (*jnp.shape(p)[:-1], 1)


def _col_shape(p):
    return (*jnp.shape(p)[:-2], 1, jnp.shape(p)[-1])


def _adafactor_init(params, *, lr, beta2_decay, eps1, eps2, d, weight_decay):
    del lr, beta2_decay, eps1, eps2, d, weight_decay

    def zeros(shape_of):
        return jax.tree.map(
            lambda p: jnp.zeros(shape_of(p), jnp.result_type(p)) if _factored(p) else _empty(p),
            params,
        )

    variance = jax.tree.map(
        lambda p: _empty(p) if _factored(p) else jnp.zeros_like(jnp.asarray(p)), params
    )
    return TorchAdafactorState(
        row_var=zeros(_row_shape), col_var=zeros(_col_shape), variance=variance, count=zero_count()
    )


def _lerp(start, end, weight):
    """torch's ``start.lerp_(end, weight)``, with its two formulas either side of 0.5."""
    return jnp.where(
        weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight)
    )


def _norm(x, axis=None, keepdims=False):
    return jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=keepdims))


def _adafactor_leaf(g, p, row, col, var, *, t, rate, beta2_decay, eps1, eps2, d, weight_decay):
    g, w = as_compute(g), as_compute(p)
    dtype = g.dtype
    e1 = float(jnp.finfo(jnp.result_type(p)).eps) if eps1 is None else eps1
    weight = (t**beta2_decay).astype(dtype)  # 1 - beta2_t
    rho = jnp.minimum(rate, 1 / jnp.sqrt(t)).astype(dtype)
    alpha = jnp.maximum(eps2, _norm(w) / math.sqrt(max(w.size, 1))) * rho
    # squares and their sums saturate at the largest float (torch's would overflow to inf)
    if _factored(g):
        # a zero-size leaf's means are 0 (torch's 0 / 0 would put NaN in the other factor)
        row_mean = jnp.square(_norm(g, axis=-1, keepdims=True)) / max(g.shape[-1], 1)
        col_mean = jnp.square(_norm(g, axis=-2, keepdims=True)) / max(g.shape[-2], 1)
        row = saturate(_lerp(as_compute(row), saturate(row_mean, dtype), weight), dtype)
        col = saturate(_lerp(as_compute(col), saturate(col_mean, dtype), weight), dtype)
        row_sum = saturate(jnp.sum(row, axis=-2, keepdims=True), dtype)
        estimate = saturate(row * col, dtype) / jnp.maximum(row_sum / max(row.shape[-2], 1), e1)
    else:
        var = saturate(_lerp(as_compute(var), saturate(g * g, dtype), weight), dtype)
        estimate = var
    update = jax.lax.rsqrt(jnp.maximum(estimate, e1 * e1)) * g
    denom = jnp.maximum(1.0, _norm(update) / (math.sqrt(max(update.size, 1)) * d))
    decayed = w * (1 - rate * weight_decay).astype(dtype)
    step = (decayed - w) + update * (-alpha / denom)  # w + step: torch's decay, then its step
    return step.astype(jnp.result_type(p)), row, col, var


def _store(new, old):
    """``new`` in ``old``'s dtype, saturating at that dtype's largest finite value."""
    return jnp.minimum(new, float(jnp.finfo(old.dtype).max)).astype(old.dtype)


def _adafactor_update(
    updates, state, params=None, *, lr, beta2_decay, eps1, eps2, d, weight_decay, **extra
):
    del extra
    if params is None:
        raise ValueError(
            "gradopt.compat.torch.adafactor needs the parameters (its step is relative to "
            "their RMS): call update(updates, state, params)."
        )
    updates = check_gradients(updates, params)
    count = increment(state.count)
    t = count.astype(jnp.float32)
    rate = jnp.asarray(lr(state.count) if callable(lr) else lr, jnp.float32)
    leaf = lambda g, p, r, c, v: _adafactor_leaf(  # noqa: E731
        g,
        p,
        r,
        c,
        v,
        t=t,
        rate=rate,
        beta2_decay=beta2_decay,
        eps1=eps1,
        eps2=eps2,
        d=d,
        weight_decay=weight_decay,
    )
    out = tree_map(
        leaf,
        updates,
        params,
        state.row_var,
        state.col_var,
        state.variance,
        rest_what="params",
        same_shapes=False,
    )
    treedef = jax.tree.structure(updates)
    parts = treedef.flatten_up_to(out)
    pick = lambda i: treedef.unflatten([x[i] for x in parts])  # noqa: E731
    row = jax.tree.map(_store, pick(1), state.row_var)
    col = jax.tree.map(_store, pick(2), state.col_var)
    var = jax.tree.map(_store, pick(3), state.variance)
    return pick(0), TorchAdafactorState(row_var=row, col_var=col, variance=var, count=count)


def adafactor(
    lr=0.01,
    beta2_decay=-0.8,
    eps=(None, 0.001),
    d=1.0,
    weight_decay=0.0,
    *,
    maximize=False,
):
    """``torch.optim.Adafactor``: Adam's second moment stored as row and column means.

    With ``g`` the gradient (negated if ``maximize``), ``t`` the step,
    ``(eps1, eps2) = eps`` (``eps1=None``: the machine epsilon of the
    parameter's dtype) and ``n`` the number of entries of ``w``::

        beta2_t = 1 - t ** beta2_decay
        rho_t   = min(lr, 1 / sqrt(t))
        alpha   = max(eps2, RMS(w)) * rho_t                       (RMS(w) = |w| / sqrt(n))
        w       = w * (1 - lr * weight_decay)
        # leaves of 2 or more dimensions, factored over the last two:
        R = beta2_t * R + (1 - beta2_t) * mean(g**2, axis=-1)
        C = beta2_t * C + (1 - beta2_t) * mean(g**2, axis=-2)
        V = R C / max(mean(R, axis=-2), eps1)
        # scalars and vectors:
        V = beta2_t * V + (1 - beta2_t) * g**2
        u = g / sqrt(max(V, eps1**2))
        w = w - alpha / max(1, RMS(u) / d) * u

    One stage (it reads the parameters) after the ``maximize`` negation.

    Args:
      lr: >= 0, or a schedule; it caps the relative step ``1 / sqrt(t)`` and
        scales the weight decay.
      beta2_decay: <= 0; ``1 - beta2_t = t ** beta2_decay``.
      eps: ``(eps1, eps2)``: ``eps1`` (None or >= 0) floors the second-moment
        estimate at ``eps1**2``; ``eps2`` >= 0 floors the parameters' RMS.
      d: the update clipping threshold, >= 1.
      weight_decay: decoupled decay coefficient, >= 0.
      maximize: ascend instead of descend.

    Returns:
      A gradient transformation; its ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradopt.compat import torch as torch_compat
      >>> opt = torch_compat.adafactor(lr=0.01)
      >>> params = {"w": jnp.ones((2, 3))}
      >>> updates, _ = opt.update({"w": jnp.ones((2, 3))}, opt.init(params), params)
      >>> [round(float(x), 6) for x in updates["w"].ravel()]  # -RMS(w) * lr * g / |g|
      [-0.01, -0.01, -0.01, -0.01, -0.01, -0.01]

    Note:
      torch has no first moment, factors the last two dimensions of every
      leaf with two or more, caps the relative step by ``lr`` and divides the
      update by ``max(1, RMS(u) / d)``. optax's ``adafactor`` factors the two
      largest dimensions (and only above ``min_dim_size_to_factor``), adds
      ``eps`` to ``g**2`` rather than flooring, and has optional momentum;
      Keras' ``Adafactor`` names the arguments ``beta_2_decay``,
      ``epsilon_1``, ``epsilon_2``, ``clip_threshold``.

    References:
      Shazeer and Stern, Adafactor: Adaptive Learning Rates with Sublinear
      Memory Cost, ICML 2018, arXiv:1804.04235.
    """
    where = _where("adafactor")
    check_learning_rate(where, lr, "lr")
    check_scalar(
        where,
        "beta2_decay",
        beta2_decay,
        high=0.0,
        fix="torch.optim requires beta2_decay <= 0; -0.8 is the default.",
    )
    if not (isinstance(eps, (tuple, list)) and len(eps) == 2):
        raise TypeError(
            f"{where}: eps must be a pair (eps1, eps2) such as (None, 1e-3), got {eps!r}."
        )
    eps1, eps2 = eps
    if eps1 is not None:
        _non_negative(where, "eps[0]", eps1)
    _non_negative(where, "eps[1]", eps2)
    check_scalar(where, "d", d, low=1.0, fix="torch.optim requires d >= 1; 1.0 is the default.")
    _non_negative(where, "weight_decay", weight_decay)
    if not isinstance(maximize, bool):
        raise TypeError(f"{where}: maximize must be True or False, got {maximize!r}.")
    rule = [
        transform(
            _adafactor_init,
            _adafactor_update,
            lr=lr,
            beta2_decay=beta2_decay,
            eps1=eps1,
            eps2=eps2,
            d=d,
            weight_decay=weight_decay,
        )
    ]
    return _assemble(rule, weight_decay=0, maximize=maximize, coupled=False)
