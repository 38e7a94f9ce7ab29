"""Sophia's clipped, diagonally preconditioned momentum (see :func:`gradopt.sophia`).

The diagonal Hessian estimate is refreshed every ``update_interval`` steps
inside a ``lax.cond``, so the Hessian-vector product (or the extra gradient of
the Gauss-Newton-Bartlett estimator) runs only on those steps.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, transform
from gradopt.core._checks import check_choice, check_decay, check_eps, check_scalar
from gradopt.core._numerics import as_compute, increment, zero_count
from gradopt.transforms._objective import fn_kwargs, require, require_params
from gradopt.transforms._real_only import real_only
from gradopt.transforms._shampoo import _int


class SophiaState(NamedTuple):
    """State of :func:`scale_by_sophia`.

    Attributes:
      count: steps taken (int32, saturating).
      mu: EMA of the gradient (float32).
      nu: EMA of the diagonal Hessian estimates (float32).
      key: the PRNG key of the estimator.
    """

    count: jax.Array  # type: ignore[assignment]
    mu: object
    nu: object
    key: jax.Array


def _sophia_init(params, *, seed, **hyper):
    del hyper

    def zeros(p):
        return jnp.zeros(jnp.shape(p), jnp.float32)

    return SophiaState(
        count=zero_count(),
        mu=jax.tree.map(zeros, params),
        nu=jax.tree.map(zeros, params),
        key=jax.random.PRNGKey(seed),
    )


def _rademacher_like(key, params):
    """One Rademacher vector per leaf, from ``split(key, number of leaves)``."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [
            jax.random.rademacher(k, jnp.shape(p), jnp.float32).astype(jnp.result_type(p))
            for k, p in zip(keys, leaves, strict=True)
        ]
    )


def hutchinson_diagonal(value_fn, params, key, kwargs):
    """``z * (H z)`` with ``z`` Rademacher: an unbiased estimate of ``diag(H)``."""
    z = _rademacher_like(key, params)
    hz = jax.jvp(jax.grad(lambda w: value_fn(w, **kwargs)), (params,), (z,))[1]
    return jax.tree.map(lambda a, b: as_compute(a) * as_compute(b), hz, z)


def gnb_diagonal(sampled_value_fn, params, key, batch_size, kwargs):
    """Gauss-Newton-Bartlett: ``B * g_hat * g_hat`` with ``g_hat`` the gradient of the
    mean loss on labels sampled from the model's own predictions."""
    g = jax.grad(lambda w: sampled_value_fn(w, key, **kwargs))(params)
    return jax.tree.map(lambda x: batch_size * as_compute(x) * as_compute(x), g)


def _sophia_update(
    updates, state, params=None, *, b1, b2, eps, gamma, clip_threshold, update_interval,
    estimator, gnb_batch_size, seed, **extra,
):  # fmt: skip
    del seed
    where = "gradopt.scale_by_sophia"
    require_params(where, params)
    count = increment(state.count)
    t = count.astype(jnp.float32)
    mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * as_compute(g), state.mu, updates)

    def step(m, h, u):
        r = (m / (1.0 - b1**t)) / jnp.maximum(gamma * h, eps)
        if clip_threshold is not None:
            r = jnp.clip(r, -clip_threshold, clip_threshold)
        return r.astype(u.dtype)

    out = jax.tree.map(step, mu, state.nu, updates)
    if estimator == "hutchinson":
        fn = require(where, "value_fn", extra)
    else:
        fn = require(where, "sampled_value_fn", extra)
    kwargs = fn_kwargs(fn, extra)

    def refresh(operand):
        key, nu = operand
        key, sub = jax.random.split(key)
        if estimator == "hutchinson":
            h = hutchinson_diagonal(fn, params, sub, kwargs)
        else:
            h = gnb_diagonal(fn, params, sub, gnb_batch_size, kwargs)
        return key, jax.tree.map(lambda n, x: b2 * n + (1.0 - b2) * x, nu, h)

    key, nu = jax.lax.cond(
        state.count % update_interval == 0, refresh, lambda o: o, (state.key, state.nu)
    )
    return out, SophiaState(count=count, mu=mu, nu=nu, key=key)


SOPHIA_REAL_ONLY = (
    "its curvature is one diagonal Hessian entry per real coordinate, and a complex entry "
    "has a 2 x 2 real curvature block that one number does not describe"
)


def scale_by_sophia(
    b1=0.965,
    b2=0.99,
    eps=1e-8,
    gamma=0.01,
    clip_threshold=1.0,
    *,
    update_interval: int = 10,
    estimator: str = "hutchinson",
    gnb_batch_size=1.0,
    seed: int = 0,
) -> GradientTransformation:
    """``clip(m_hat / max(gamma h, eps), clip_threshold)``; see :func:`gradopt.sophia`.

    Args:
      b1: decay of the gradient's EMA, in [0, 1).
      b2: decay of the Hessian estimates' EMA, in [0, 1).
      eps: floor of the denominator, > 0.
      gamma: scale of the Hessian estimate, > 0.
      clip_threshold: elementwise clip, > 0 (None: no clipping).
      update_interval: refresh the Hessian estimate every this many steps.
      estimator: ``"hutchinson"`` (needs ``value_fn=``) or ``"gnb"`` (needs
        ``sampled_value_fn=``, ``(params, key, **data) -> loss`` on labels
        sampled from the model).
      gnb_batch_size: ``B`` of the Gauss-Newton-Bartlett estimator, > 0.
      seed: seed of the estimator's random vectors (an int).
    """
    where = "gradopt.scale_by_sophia"
    check_decay(where, "b1", b1)
    check_decay(where, "b2", b2)
    check_eps(where, eps)
    check_scalar(where, "gamma", gamma, low=0.0, low_open=True, fix="Use 0.01.")
    if clip_threshold is not None:
        check_scalar(where, "clip_threshold", clip_threshold, low=0.0, low_open=True)
    _int(where, "update_interval", update_interval)
    check_choice(where, "estimator", estimator, ("hutchinson", "gnb"))
    check_scalar(where, "gnb_batch_size", gnb_batch_size, low=0.0, low_open=True)
    _int(where, "seed", seed, low=0)
    return real_only(
        transform(
            _sophia_init,
            _sophia_update,
            b1=b1,
            b2=b2,
            eps=eps,
            gamma=gamma,
            clip_threshold=clip_threshold,
            update_interval=update_interval,
            estimator=estimator,
            gnb_batch_size=gnb_batch_size,
            seed=seed,
        ),
        name=where,
        reason=SOPHIA_REAL_ONLY,
    )
