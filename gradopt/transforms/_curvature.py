"""Curvature primitives: the exact Newton system, and matrix-free conjugate gradient.

Each returns the *preconditioned gradient* ``d`` with ``B d = g`` for a
curvature matrix ``B`` (the Hessian, ``J^T J``, plus damping), so that the
named optimizers (:func:`gradopt.newton`, :func:`gradopt.gauss_newton`,
:func:`gradopt.levenberg_marquardt`, :func:`gradopt.hessian_free`) descend
with ``scale_by_learning_rate``. They read the objective from the extra update
arguments (:mod:`gradopt.transforms._objective`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.core._base import GradientTransformation, transform
from gradopt.core._checks import check_scalar
from gradopt.core._numerics import as_compute, compute_dtype, increment, zero_count
from gradopt.transforms._objective import fn_kwargs, require, require_params, tree_vdot

NEWTON_MAX_PARAMS = 4096
"""Largest parameter count :func:`gradopt.newton` accepts by default: the Hessian
then takes 64 MiB in float32 and costs as much as 4096 gradients."""


def _is_complex(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.complexfloating)


def flat_view(params):
    """``(x, unflatten)``: the parameters as one real float32 (or wider) vector, and back.

    A complex leaf is realified: its real parts, then its imaginary parts, so
    a complex entry takes two places of ``x`` (the vector of ``R^{2n}`` on
    which a real loss of complex parameters has a real Hessian).
    """
    leaves, treedef = jax.tree.flatten(params)
    shapes = [jnp.shape(p) for p in leaves]
    dtypes = [jnp.result_type(p) for p in leaves]
    sizes = [int(np.prod(s)) for s in shapes]
    reals = [jnp.finfo(d).dtype if _is_complex(d) else d for d in dtypes]
    wide = max(
        (compute_dtype(d) for d in reals), key=lambda d: d.itemsize, default=jnp.dtype(jnp.float32)
    )
    parts = []
    for p, dtype in zip(leaves, dtypes, strict=True):
        if _is_complex(dtype):
            parts += [jnp.real(p).astype(wide).ravel(), jnp.imag(p).astype(wide).ravel()]
        else:
            parts.append(as_compute(p).astype(wide).ravel())
    x = jnp.concatenate(parts) if parts else jnp.zeros([0], wide)  # no leaves: empty vector

    def unflatten(v, cast=True):
        parts, start = [], 0
        for shape, dtype, size in zip(shapes, dtypes, sizes, strict=True):
            if _is_complex(dtype):
                re, im = v[start : start + size], v[start + size : start + 2 * size]
                part = jax.lax.complex(re, im).reshape(shape)
                start += 2 * size
            else:
                part = v[start : start + size].reshape(shape)
                start += size
            parts.append(part.astype(dtype) if cast else part)
        return jax.tree.unflatten(treedef, parts)

    return x, unflatten


# ----------------------------------------------------------------------------
# Newton


class NewtonState(NamedTuple):
    """State of :func:`scale_by_newton`: the number of steps (each costs ``d`` gradients)."""

    count: jax.Array  # type: ignore[assignment]


def _newton_init(params, *, damping, max_params):
    del params, damping, max_params
    return NewtonState(count=zero_count())


def _newton_update(updates, state, params=None, *, damping, max_params, **extra):
    where = "gradopt.scale_by_newton"
    require_params(where, params)
    value_fn = require(where, "value_fn", extra)
    kwargs = fn_kwargs(value_fn, extra)
    x, unflatten = flat_view(params)
    if x.shape[0] > max_params:
        raise ValueError(
            f"{where}: the parameters have {x.shape[0]} entries, above max_params="
            f"{max_params}; the exact Hessian would hold {x.shape[0] ** 2} numbers and cost "
            f"{x.shape[0]} gradients a step. Use gradopt.hessian_free or gradopt.lbfgs "
            "(matrix-free), or raise max_params if the memory is there."
        )
    if x.shape[0] == 0:  # no entries (no leaves, or zero-size ones): nothing to solve
        return jax.tree.map(jnp.zeros_like, updates), NewtonState(count=increment(state.count))
    g, _ = flat_view(updates)
    hessian = jax.hessian(lambda v: as_compute(value_fn(unflatten(v), **kwargs)))(x)
    system = hessian + damping * jnp.eye(x.shape[0], dtype=x.dtype)
    d = jnp.linalg.solve(system, g.astype(x.dtype))
    out = unflatten(d, cast=False)
    out = jax.tree.map(lambda o, u: o.astype(u.dtype), out, updates)
    return out, NewtonState(count=increment(state.count))


def scale_by_newton(damping=0.0, *, max_params: int = NEWTON_MAX_PARAMS) -> GradientTransformation:
    """Solve ``(H + damping I) d = g`` with the exact Hessian (see :func:`gradopt.newton`).

    Args:
      damping: ``lambda >= 0`` added to the Hessian's diagonal.
      max_params: refuse (ValueError at trace time) above this many parameters
        (a complex entry counts two).

    Returns:
      A transform that needs ``params`` and ``value_fn=`` and returns ``d``.
    """
    where = "gradopt.scale_by_newton"
    check_scalar(where, "damping", damping, low=0.0, fix="Use 0.0 for the pure Newton step.")
    _check_count(where, "max_params", max_params)
    return transform(_newton_init, _newton_update, damping=damping, max_params=max_params)


def _check_count(where, name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {name} must be an int >= {low}, got {value!r}.")
    if value < low:
        raise ValueError(f"{where}: {name} must be >= {low}, got {value}.")


# ----------------------------------------------------------------------------
# conjugate gradient on pytrees


def conjugate_gradient(matvec, b, x0, *, max_steps: int, tol):
    """Solve ``A x = b`` (A symmetric positive definite) by CG from ``x0``.

    Stops after ``max_steps`` products or when ``|r| <= tol * |b|``; a
    direction of non-positive curvature stops it too (the iterate so far is
    kept, as Martens 2010 does). Returns ``(x, r, steps)`` with ``r = b - A x``.
    """

    def axpy(a, u, v):
        def leaf(p, q):
            p = as_compute(p)
            return (jnp.asarray(a).astype(p.dtype) * p + as_compute(q)).astype(q.dtype)

        return jax.tree.map(leaf, u, v)

    r0 = axpy(-1.0, matvec(x0), b)
    bound = (tol**2) * tree_vdot(b, b)

    def cond(c):
        _, r, _, rr, k, stop = c
        return (k < max_steps) & (rr > bound) & ~stop

    def body(c):
        x, r, p, rr, k, _ = c
        ap = matvec(p)
        curvature = tree_vdot(p, ap)
        stop = curvature <= 0.0
        alpha = jnp.where(stop, 0.0, rr / jnp.where(stop, 1.0, curvature))
        x = axpy(alpha, p, x)
        r = axpy(-alpha, ap, r)
        rr_new = tree_vdot(r, r)
        p = axpy(rr_new / jnp.where(rr > 0.0, rr, 1.0), p, r)
        return x, r, p, rr_new, k + 1, stop

    start = (x0, r0, r0, tree_vdot(r0, r0), jnp.zeros([], jnp.int32), jnp.asarray(False))
    x, r, _, _, k, _ = jax.lax.while_loop(cond, body, start)
    return x, r, k


def _check_cg(where, max_cg_steps, cg_tol):
    _check_count(where, "max_cg_steps", max_cg_steps)
    check_scalar(where, "cg_tol", cg_tol, low=0.0, fix="Use 1e-4.")
