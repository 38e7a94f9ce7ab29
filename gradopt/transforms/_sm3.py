"""SM3's cover-based second moment (Anil, Gupta, Koren & Singer, 2019).

For a tensor, the cover is its axis slices: one accumulator per index of every
axis (``n + m`` numbers for an ``n x m`` matrix). Each entry's statistic is the
smallest of the accumulators of the slices through it plus ``g**2``; each
accumulator then keeps the largest statistic of its slice. Vectors and scalars
keep a full accumulator. The rule is on :func:`gradopt.sm3`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, transform, tree_map
from gradopt.core._checks import check_decay, check_eps, check_scalar
from gradopt.core._numerics import as_compute, hyper, saturate
from gradopt.transforms._real_only import real_only

PyTree = Any


class ScaleBySM3State(NamedTuple):
    """State of :func:`scale_by_sm3`.

    Attributes:
      mu: per leaf, a tuple of accumulators: one per axis (shape ``(shape[i],)``)
        for tensors of rank >= 2, one of the leaf's shape otherwise.
      nu: the momentum of the scaled updates.
    """

    mu: PyTree
    nu: PyTree


def _max(x):
    return float(jnp.finfo(jnp.result_type(x)).max)


def _sm3_init(params, *, b1, b2, eps):
    del b1, b2, eps

    def one(p):
        p = jnp.asarray(p)
        if p.ndim < 2:
            return (jnp.zeros_like(p),)
        return tuple(jnp.zeros((n,), p.dtype) for n in p.shape)

    return ScaleBySM3State(
        mu=jax.tree.map(one, params), nu=jax.tree.map(lambda p: jnp.zeros_like(p), params)
    )


def _sm3_update(updates, state, params=None, *, b1, b2, eps, **extra):
    del params, extra

    def one(g, mu, nu):
        g = jnp.asarray(g)
        c = as_compute(g)
        sq = saturate(c * c, c.dtype)
        if isinstance(b2, (int, float)):
            one_minus_b2 = 1.0 if b2 == 1.0 else 1.0 - b2
        else:  # b2 = 1 means sums (the paper), not an average with weight 0
            one_minus_b2 = jnp.where(hyper(b2, c) == 1, 1.0, 1 - hyper(b2, c))
        if g.ndim < 2:
            low = as_compute(mu[0])
        else:
            shaped = [
                jnp.reshape(as_compute(m), [1] * i + [g.shape[i]] + [1] * (g.ndim - i - 1))
                for i, m in enumerate(mu)
            ]
            low = functools.reduce(jnp.minimum, shaped)
        acc = saturate(one_minus_b2 * sq + hyper(b2, c) * low, c.dtype)
        up = c * jnp.where(acc > 0, jax.lax.rsqrt(acc + hyper(eps, c)), 0.0)
        new_nu = hyper(b1, c) * as_compute(nu) + (1 - hyper(b1, c)) * up
        if g.ndim < 2:
            new_mu = (saturate(acc, mu[0].dtype).astype(mu[0].dtype),)
        else:
            axes = range(g.ndim)
            new_mu = tuple(
                saturate(
                    jnp.max(acc, axis=tuple(j for j in axes if j != i), initial=0.0), m.dtype
                ).astype(m.dtype)
                for i, m in zip(axes, mu, strict=True)
            )
        stored_nu = jnp.clip(new_nu, -_max(nu), _max(nu)).astype(jnp.result_type(nu))
        return new_nu.astype(g.dtype), new_mu, stored_nu

    tree_map(lambda g, n: None, updates, state.nu, rest_what="state")  # structure and shapes
    treedef = jax.tree.structure(updates)
    results = jax.tree.map(one, updates, state.mu, state.nu)
    flat = treedef.flatten_up_to(results)
    out, mu, nu = (jax.tree.unflatten(treedef, [r[i] for r in flat]) for i in range(3))
    return out, ScaleBySM3State(mu, nu)


def scale_by_sm3(b1=0.9, b2=1.0, eps=1e-8) -> GradientTransformation:
    """SM3's scaling with momentum: ``nu = b1 nu + (1 - b1) g / sqrt(acc)``.

    Args:
      b1: the momentum's decay rate, in [0, 1) (0.9).
      b2: the accumulators' decay, in [0, 1] (1.0: the paper's sums; below 1 an
        exponential average, ``acc = (1 - b2) g**2 + b2 min(mu)``).
      eps: > 0, added under the root (1e-8).

    Returns:
      A gradient transformation with state :class:`ScaleBySM3State`.
    """
    where = "gradopt.scale_by_sm3"
    check_decay(where, "b1", b1)
    check_scalar(where, "b2", b2, low=0.0, high=1.0, fix="1.0 is the paper's (sums).")
    check_eps(where, eps)
    return real_only(
        transform(_sm3_init, _sm3_update, b1=b1, b2=b2, eps=eps),
        name="gradopt.scale_by_sm3",
        reason="its cover-set maxima are defined on real squares (as optax.sm3)",
    )
