"""Orthogonalisation by a Newton--Schulz iteration (Muon's step) and Muon's shape scaling.

:func:`newton_schulz` maps a matrix ``G = U S V^T`` to approximately
``U V^T``, using only matrix products: after scaling ``X = G / (|G|_F + eps)``
(so that every singular value is at most 1) each step applies the odd
polynomial ``X <- a X + (b A + c A^2) X`` with ``A = X X^T``, which pushes
every singular value towards the fixed point near 1. Muon's coefficients
``(3.4445, -4.7750, 2.0315)`` make the slope at 0 large, so five steps bring
singular values from 1e-3 into roughly [0.7, 1.2]; they do not converge to
exactly 1, which Muon does not need.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gradopt.core._base import EmptyState, GradientTransformation, transform
from gradopt.core._checks import check_eps, check_scalar, concrete_value
from gradopt.core._numerics import as_compute, div_real, hyper, is_complex, real_dtype
from gradopt.transforms._clipping import _norm

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # Jordan (2024), used by Muon and optax.contrib.muon


def _is_triple(c) -> bool:
    return isinstance(c, (tuple, list)) and len(c) == 3 and not isinstance(c[0], (tuple, list))


def per_step_coeffs(where: str, coeffs, steps):
    """Validate ``coeffs`` and ``steps``; return ``(triples, steps)``.

    ``triples`` has one ``(a, b, c)`` per step when ``steps`` is a concrete
    int (the loop is unrolled); a traced ``steps`` (optax.inject_hyperparams
    traces integer hyperparameters too) keeps the single triple and runs a
    ``fori_loop``.
    """
    value = None if isinstance(steps, (int, bool)) else concrete_value(steps)
    if value is not None:
        if value == int(value) and jnp.issubdtype(jnp.result_type(steps), jnp.integer):
            steps = int(value)  # a concrete integer array
    traced = isinstance(steps, jax.core.Tracer) and jnp.issubdtype(
        jnp.result_type(steps), jnp.integer
    )
    if not traced and (not isinstance(steps, int) or isinstance(steps, bool)):
        raise TypeError(
            f"{where}: ns_steps must be a non-negative int, got {steps!r} of type "
            f"{type(steps).__name__}. Use 5 (Muon's default)."
        )
    if not traced and steps < 0:
        raise ValueError(f"{where}: ns_steps must be a non-negative int, got {steps!r}. Use 5.")
    if _is_triple(coeffs):
        triples = (tuple(coeffs),) if traced else (tuple(coeffs),) * steps
    elif isinstance(coeffs, (tuple, list)) and coeffs and all(_is_triple(c) for c in coeffs):
        if traced or len(coeffs) != steps:
            raise ValueError(
                f"{where}: {len(coeffs)} coefficient triples were given for ns_steps={steps}. "
                "Give one (a, b, c) triple per step, or a single triple used at every step."
            )
        triples = tuple(tuple(c) for c in coeffs)
    else:
        raise TypeError(
            f"{where}: ns_coeffs must be a triple (a, b, c) or a sequence of such triples, got "
            f"{coeffs!r}. Muon's default is {NS_COEFFS}."
        )
    for triple in triples:
        for name, value in zip("abc", triple, strict=True):
            check_scalar(where, f"ns_coeffs ({name})", value)
    return triples, (steps if traced else None)


def _ns_matrix(x, triples, eps, steps=None):
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    r = jnp.zeros([], real_dtype(x.dtype))  # the norm is real for a complex matrix
    x = div_real(x, _norm([x], r.dtype) + hyper(eps, r))

    def ns_step(x, a, b, c):
        # X X^H: for a complex X = U S V^H the iteration maps S and keeps U, V^H,
        # so it converges to the complex polar factor U V^H (X X^T on real X)
        s = x @ (jnp.conj(x).T if is_complex(x.dtype) else x.T)
        return hyper(a, x) * x + (hyper(b, x) * s + hyper(c, x) * (s @ s)) @ x

    if steps is None:
        for a, b, c in triples:
            x = ns_step(x, a, b, c)
    else:
        x = jax.lax.fori_loop(0, steps, lambda i, x: ns_step(x, *triples[0]), x)
    return x.T if transposed else x


def newton_schulz(x, coeffs=NS_COEFFS, steps: int = 5, eps=1e-8):
    """The Newton--Schulz orthogonalisation of a matrix (or a stack of matrices).

    Args:
      x: an array of rank 2, or of higher rank (a stack of matrices over the
        last two axes, each orthogonalised on its own).
      coeffs: the polynomial's ``(a, b, c)``, or one triple per step.
      steps: the number of steps (an int; unrolled, or a ``fori_loop`` if traced).
      eps: > 0, added to the Frobenius norm before the first step.

    Returns:
      An array of ``x``'s shape and dtype (computed in float32 or wider).

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> q = gradopt.newton_schulz(jnp.array([[3.0, 0.0], [0.0, 0.01]]))
      >>> bool(jnp.all(jnp.abs(jnp.diag(q) - 1.0) < 0.35))  # both singular values near 1
      True
    """
    triples, traced = per_step_coeffs("gradopt.newton_schulz", coeffs, steps)
    check_eps("gradopt.newton_schulz", eps)
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(
            f"gradopt.newton_schulz: x must have rank 2 or more (a matrix or a stack of "
            f"matrices), got shape {x.shape}."
        )
    return _orthogonalize_leaf(x, triples, eps, traced)


def _orthogonalize_leaf(x, triples, eps, steps=None):
    c = as_compute(x)
    if c.size == 0:  # a stack of empty matrices (or no matrices): nothing to orthogonalise
        return x
    if c.ndim == 2:
        out = _ns_matrix(c, triples, eps, steps)
    else:
        stack = c.reshape((-1, *c.shape[-2:]))
        out = jax.vmap(lambda m: _ns_matrix(m, triples, eps, steps))(stack).reshape(c.shape)
    return out.astype(x.dtype)


def _empty_init(params, **hyper):
    del params, hyper
    return EmptyState()


def _orth_update(updates, state, params=None, *, triples, eps, steps, **extra):
    del params, extra

    def leaf(u):
        u = jnp.asarray(u)
        return u if u.ndim < 2 else _orthogonalize_leaf(u, triples, eps, steps)

    return jax.tree.map(leaf, updates), state


def orthogonalize(coeffs=NS_COEFFS, steps: int = 5, eps=1e-8) -> GradientTransformation:
    """Replace every matrix leaf by its Newton--Schulz orthogonalisation (Muon's step).

    Leaves of rank 2 are orthogonalised as matrices, leaves of higher rank as
    stacks of matrices over their last two axes; scalars and vectors pass
    unchanged (route them to another rule with :func:`gradopt.partition`, as
    :func:`gradopt.muon` does). The rule is on :func:`gradopt.muon`.

    Args:
      coeffs: the polynomial's ``(a, b, c)`` (Muon's ``(3.4445, -4.7750,
        2.0315)``), or a sequence of ``steps`` triples, one per step.
      steps: the number of Newton--Schulz steps, an int >= 0 (unrolled; a
        traced count, as ``optax.inject_hyperparams`` makes, runs a ``fori_loop``).
      eps: > 0, added to the Frobenius norm.

    Returns:
      A gradient transformation with an empty state.
    """
    triples, traced = per_step_coeffs("gradopt.orthogonalize", coeffs, steps)
    check_eps("gradopt.orthogonalize", eps)
    return transform(_empty_init, _orth_update, triples=triples, eps=eps, steps=traced)


def _shape_update(updates, state, params=None, *, consistent_rms, **extra):
    del params, extra

    def leaf(u):
        u = jnp.asarray(u)
        if u.ndim < 2:
            return u
        fan_in, fan_out = u.shape[-2], u.shape[-1]
        c = as_compute(u)
        if consistent_rms is None:
            factor = math.sqrt(max(1.0, fan_out / fan_in)) if fan_in else 1.0
            return (c * factor).astype(u.dtype)
        return (c * math.sqrt(max(fan_in, fan_out)) * hyper(consistent_rms, c)).astype(u.dtype)

    return jax.tree.map(leaf, updates), state


def scale_by_shape(consistent_rms=None) -> GradientTransformation:
    """Muon's scaling of an ``(fan_in, fan_out)`` matrix update by its shape.

    ``sqrt(max(1, fan_out / fan_in))`` (Jordan's width scaling), or, with
    ``consistent_rms``, ``sqrt(max(fan_in, fan_out)) * consistent_rms`` so that
    the update's RMS does not depend on the shape (Liu et al., 2025; 0.2
    matches AdamW's). The last two axes are ``(fan_in, fan_out)``; scalars and
    vectors pass unchanged.

    Args:
      consistent_rms: None, or the target RMS (>= 0).

    Returns:
      A gradient transformation with an empty state.
    """
    if consistent_rms is not None:
        check_scalar(
            "gradopt.scale_by_shape",
            "consistent_rms",
            consistent_rms,
            low=0.0,
            fix="Use None (width scaling) or 0.2 (AdamW's RMS).",
        )
    return transform(_empty_init, _shape_update, consistent_rms=consistent_rms)
