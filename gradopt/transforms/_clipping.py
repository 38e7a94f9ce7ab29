"""Clipping by value, by per-leaf norm and by global norm; the global norm itself.

Gradient clipping answers the "steep cliffs" of recurrent and very deep
networks: a single huge gradient can throw the parameters far away, so its size
is bounded while (for the norm variants) its direction is kept.

Non-finite gradients: clipping does not repair them. ``clip`` maps ``±inf`` to
``±max_delta`` and keeps NaN; the norm variants see a NaN or infinite norm and
return NaN for every entry of the leaf (``clip_by_norm``) or of the whole
tree (``clip_by_global_norm``), so a bad step is never silently shrunk to a
plausible-looking one. Wrap the optimizer in :func:`gradopt.skip_nonfinite`
to drop such steps.

Complex updates are clipped on their magnitude ``|u|`` and keep their phase:
``clip`` limits each entry's modulus, the norms are ``sqrt(sum |u_i|**2)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradopt.core._base import EmptyState, GradientTransformation, transform
from gradopt.core._checks import check_scalar
from gradopt.core._numerics import (
    abs_sq,
    as_compute,
    complex_dtype,
    hyper,
    is_complex,
    mul_real,
    real_dtype,
)


def _empty_init(params, **hyper):
    del params, hyper
    return EmptyState()


def _norm(leaves, dtype) -> jax.Array:
    """``sqrt(sum of x_i^2)`` over ``leaves``, finite whenever the result is.

    The leaves are scaled by their largest magnitude ``m`` first, so that a
    finite gradient whose squares overflow (|x| above 1.8e19 in float32) still
    has a finite norm: ``m * sqrt(sum((x_i / m)^2))``. An inf stays inf and a
    NaN stays NaN.
    """
    if not leaves:
        return jnp.zeros([], dtype)
    m = jnp.max(jnp.stack([jnp.max(jnp.abs(x), initial=0.0).astype(dtype) for x in leaves]))
    usable = (m > 0) & jnp.isfinite(m)
    scale = jnp.where(usable, m, jnp.ones_like(m))
    inverse = 1 / scale
    total = jnp.zeros([], dtype)
    for x in leaves:
        if is_complex(x.dtype):  # |x_i|**2, scaled like the real case
            total = total + jnp.sum(abs_sq(mul_real(x.astype(complex_dtype(dtype)), inverse)))
        else:
            total = total + jnp.sum(jnp.square(x.astype(dtype) * inverse))
    return jnp.where(jnp.isfinite(m), scale * jnp.sqrt(total), m)


def global_norm(tree) -> jax.Array:
    """The Euclidean norm of all leaves together, ``sqrt(sum_leaves sum_i x_i^2)``.

    Computed in float32 (float64 if any leaf is float64), whatever the leaves'
    dtypes, so a bfloat16 tree's norm does not overflow or lose its digits,
    and scaled by the largest magnitude so that a finite gradient always has a
    finite norm (1e30 in float32 too). An empty tree has norm 0.
    """
    leaves = [as_compute(x) for x in jax.tree.leaves(tree)]
    wide = any(real_dtype(x.dtype) == jnp.float64 for x in leaves)
    dtype = jnp.float64 if wide else jnp.float32
    return _norm(leaves, dtype)


def _clip_update(updates, state, params=None, *, max_delta, **extra):
    del params, extra

    def clip_leaf(u):
        c = as_compute(u)
        if is_complex(c.dtype):  # the modulus is clipped, the phase kept
            a = jnp.abs(c)
            bound = hyper(max_delta, a)
            over = a > bound
            factor = jnp.where(over, bound / jnp.where(over, a, jnp.ones_like(a)), 1)
            return mul_real(c, factor.astype(a.dtype)).astype(u.dtype)
        bound = hyper(max_delta, c)
        return jnp.clip(c, -bound, bound).astype(u.dtype)

    return jax.tree.map(clip_leaf, updates), state


def clip(max_delta) -> GradientTransformation:
    """Clip every coordinate of the updates to ``[-max_delta, max_delta]``.

    ``u_i <- min(max(u_i, -max_delta), max_delta)``. Unlike the norm variants,
    this changes the direction of the update. A complex entry has its modulus
    clipped and keeps its phase: ``u_i <- u_i * min(1, max_delta / |u_i|)``
    (an entry with an infinite part becomes NaN).

    Args:
      max_delta: the bound, a non-negative number or scalar array (traced
        values are accepted).

    Returns:
      A stateless ``GradientTransformation``. ``±inf`` become ``±max_delta``;
      NaN stays NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> tx = gradopt.chain(gradopt.clip(1.0), gradopt.scale_by_learning_rate(0.1))
      >>> updates, _ = tx.update({"w": jnp.array([0.5, -3.0])}, tx.init(None))
      >>> updates["w"]
      Array([-0.05,  0.1 ], dtype=float32)

    References:
      Mikolov, "Statistical Language Models Based on Neural Networks", PhD
      thesis, 2012 (clipping each gradient component).
    """
    check_scalar("gradopt.clip", "max_delta", max_delta, low=0.0, fix="Use e.g. 1.0.")
    return transform(_empty_init, _clip_update, max_delta=max_delta)


def _shrink_factor(norm, max_norm):
    """``min(1, max_norm / norm)``; 1 for a zero norm, NaN for a non-finite norm."""
    limit = hyper(max_norm, norm)
    safe = jnp.where(norm > limit, norm, jnp.ones_like(norm))
    factor = jnp.where(norm > limit, limit / safe, jnp.ones_like(norm))
    return jnp.where(jnp.isfinite(norm), factor, jnp.full_like(norm, jnp.nan))


def _clip_by_norm_update(updates, state, params=None, *, max_norm, **extra):
    del params, extra

    def clip_leaf(u):
        c = as_compute(u)
        factor = _shrink_factor(_norm([c], real_dtype(c.dtype)), max_norm)
        return mul_real(c, factor).astype(u.dtype)

    return jax.tree.map(clip_leaf, updates), state


def clip_by_norm(max_norm) -> GradientTransformation:
    """Rescale each leaf separately so that its Euclidean norm is at most ``max_norm``.

    ``u <- u * min(1, max_norm / ||u||_2)`` for every leaf ``u`` on its own
    (the norm is over all of the leaf's entries).

    Args:
      max_norm: the largest norm allowed for each leaf (non-negative).

    Returns:
      A stateless ``GradientTransformation``. A zero leaf stays zero; a leaf
      containing ``inf`` or NaN comes out all NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> tx = gradopt.chain(gradopt.clip_by_norm(1.0), gradopt.scale_by_learning_rate(0.1))
      >>> grads = {"a": jnp.array([4.0]), "b": jnp.array([0.3, 0.4])}
      >>> updates, _ = tx.update(grads, tx.init(grads))
      >>> updates["a"], updates["b"]  # each leaf to norm at most 1
      (Array([-0.1], dtype=float32), Array([-0.03, -0.04], dtype=float32))

    References:
      Pascanu, Mikolov, Bengio, "On the difficulty of training recurrent
      neural networks", 2013, arXiv:1211.5063 (norm clipping).
    """
    check_scalar("gradopt.clip_by_norm", "max_norm", max_norm, low=0.0, fix="Use e.g. 1.0.")
    return transform(_empty_init, _clip_by_norm_update, max_norm=max_norm)


def _clip_by_global_norm_update(updates, state, params=None, *, max_norm, **extra):
    del params, extra
    factor = _shrink_factor(global_norm(updates), max_norm)

    def scale_leaf(u):
        c = as_compute(u)
        return mul_real(c, factor.astype(real_dtype(c.dtype))).astype(u.dtype)

    return jax.tree.map(scale_leaf, updates), state


def clip_by_global_norm(max_norm) -> GradientTransformation:
    """Rescale all updates together so that their global norm is at most ``max_norm``.

    ``g = sqrt(sum over leaves ||u||^2)``; ``u <- u * min(1, max_norm / g)``
    for every leaf, so the direction of the whole update is kept (Pascanu et
    al.'s rule ``if ||g|| > threshold: g <- threshold * g / ||g||``).

    Args:
      max_norm: the threshold (non-negative). The norm is computed with
        :func:`gradopt.global_norm`.

    Returns:
      A stateless ``GradientTransformation``. Zero updates stay zero; an
      ``inf`` or NaN anywhere makes every output entry NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> clip = gradopt.clip_by_global_norm(1.0)
      >>> grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}
      >>> clipped, _ = clip.update(grads, clip.init(grads))
      >>> clipped["a"], clipped["b"]  # the whole tree to norm 1
      (Array([0.6, 0. ], dtype=float32), Array([0.8], dtype=float32))
      >>> tx = gradopt.chain(gradopt.clip_by_global_norm(1.0), gradopt.adam(1e-3))

    References:
      Pascanu, Mikolov, Bengio, "On the difficulty of training recurrent
      neural networks", 2013, arXiv:1211.5063, Algorithm 1.
    """
    check_scalar("gradopt.clip_by_global_norm", "max_norm", max_norm, low=0.0, fix="Use e.g. 1.0.")
    return transform(_empty_init, _clip_by_global_norm_update, max_norm=max_norm)
