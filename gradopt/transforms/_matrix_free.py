"""Matrix-free second-order steps: Gauss-Newton / Levenberg-Marquardt and Hessian-free.

Both solve a damped curvature system ``(B + lambda I) d = g`` by conjugate
gradient (:func:`gradopt.transforms._curvature.conjugate_gradient`) using only
products with ``B``: ``J^T (J v)`` (a ``jvp`` then a ``vjp`` of the residuals)
for Gauss-Newton, ``H v`` (a ``jvp`` of ``jax.grad``) for the Hessian. See
:func:`gradopt.levenberg_marquardt` and :func:`gradopt.hessian_free` for the rules.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, transform
from gradopt.core._checks import check_choice, check_flag, check_scalar
from gradopt.core._numerics import as_compute, increment, zero_count
from gradopt.transforms._curvature import _check_cg, conjugate_gradient
from gradopt.transforms._objective import (
    add_counts,
    fn_kwargs,
    require,
    require_params,
    tree_vdot,
)
from gradopt.transforms._realify import realified


class CurvatureSolveState(NamedTuple):
    """State of :func:`scale_by_gauss_newton` and :func:`scale_by_hessian_free`.

    Attributes:
      count: steps taken (int32, saturating).
      damping: the current ``lambda`` (adapted when the method adapts it).
      nu: Levenberg-Marquardt's growth factor of ``lambda`` after a rejection.
      previous: the last solution ``d`` (Hessian-free warm-starts CG from it).
      cg_steps: CG iterations of all steps so far (int32, saturating; each one
        curvature product).
      accepted: whether the last step was taken.
    """

    count: jax.Array  # type: ignore[assignment]
    damping: jax.Array
    nu: jax.Array
    previous: object
    cg_steps: jax.Array
    accepted: jax.Array


def _solve_init(params, *, damping, **hyper):
    del hyper
    return CurvatureSolveState(
        count=zero_count(),
        damping=jnp.asarray(damping, jnp.float32),
        nu=jnp.asarray(2.0, jnp.float32),
        previous=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params),
        cg_steps=zero_count(),
        accepted=jnp.asarray(True),
    )


def _like(v, params):
    """``v`` in the parameters' dtypes (the tangents of a linearisation must match)."""
    return jax.tree.map(lambda a, p: a.astype(jnp.result_type(p)), v, params)


def _sq(tree):
    return 0.5 * tree_vdot(tree, tree)


def _predicted_decrease(g, d, residual, lam):
    """``m(0) - m(-d)`` for ``m(p) = f + g.p + p.B p / 2`` when ``(B + lam I) d = g - residual``."""
    dd = tree_vdot(d, d)
    return 0.5 * (tree_vdot(g, d) + lam.astype(dd.dtype) * dd + tree_vdot(d, residual))


def _step(params, d):
    return jax.tree.map(
        lambda w, u: (as_compute(w) - as_compute(u)).astype(jnp.result_type(w)), params, d
    )


def _finish(updates, state, d, accepted, damping, nu, k):
    zero = jax.tree.map(jnp.zeros_like, d)
    d = jax.tree.map(lambda a, b: jnp.where(accepted, a, b), d, zero)
    out = jax.tree.map(lambda a, u: a.astype(u.dtype), d, updates)
    return out, CurvatureSolveState(
        count=increment(state.count),
        damping=damping.astype(jnp.float32),
        nu=nu.astype(jnp.float32),
        previous=jax.tree.map(lambda a, p: a.astype(p.dtype), d, state.previous),
        cg_steps=add_counts(state.cg_steps, k),
        accepted=jnp.asarray(accepted),
    )


def _gn_update(updates, state, params=None, *, damping, max_cg_steps, cg_tol, adaptive, **extra):
    where = "gradopt.scale_by_gauss_newton"
    del damping
    require_params(where, params)
    residual_fn = require(where, "residual_fn", extra)
    kwargs = fn_kwargs(residual_fn, extra)

    def residuals(w):
        return residual_fn(w, **kwargs)

    r, jvp = jax.linearize(residuals, params)
    vjp = jax.linear_transpose(jvp, params)
    lam = state.damping

    def matvec(v):
        jtjv = vjp(jvp(_like(v, params)))[0]
        return jax.tree.map(
            lambda a, b: as_compute(a) + lam.astype(jnp.result_type(b)) * b, jtjv, v
        )

    g = jax.tree.map(as_compute, updates)
    d, res, k = conjugate_gradient(
        matvec, g, jax.tree.map(jnp.zeros_like, g), max_steps=max_cg_steps, tol=cg_tol
    )
    if not adaptive:
        return _finish(updates, state, d, True, lam, state.nu, k)
    # Levenberg-Marquardt with Nielsen's (1999) update of lambda
    f0 = _sq(r)
    f1 = _sq(residuals(_step(params, d)))
    pred = _predicted_decrease(g, d, res, lam).astype(jnp.result_type(f0))
    rho = (f0 - f1) / jnp.where(pred > 0.0, pred, 1.0)
    accepted = (pred > 0.0) & (rho > 0.0) & jnp.isfinite(f1)
    shrink = jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
    new_lam = jnp.where(accepted, lam * shrink, lam * state.nu)
    new_nu = jnp.where(accepted, 2.0, 2.0 * state.nu)
    return _finish(updates, state, d, accepted, new_lam, new_nu, k)


def scale_by_gauss_newton(
    damping=1e-3,
    *,
    adaptive: bool = False,
    max_cg_steps: int = 50,
    cg_tol=1e-6,
) -> GradientTransformation:
    """Solve ``(J^T J + lambda I) d = g`` by CG with ``jvp``/``vjp`` products.

    For least-squares losses ``0.5 |r(w)|^2``; ``update`` needs ``params`` and
    ``residual_fn=`` (see :func:`gradopt.gauss_newton`).

    Args:
      damping: ``lambda >= 0`` (the initial one when ``adaptive``).
      adaptive: Levenberg-Marquardt: accept the step only if the loss drops,
        and adapt ``lambda`` by the gain ratio. Keyword only.
      max_cg_steps: CG iteration cap, an int >= 1.
      cg_tol: CG stops when ``|residual| <= cg_tol |g|``.
    """
    where = "gradopt.scale_by_gauss_newton"
    check_scalar(where, "damping", damping, low=0.0, fix="Use 1e-3.")
    check_flag(where, "adaptive", adaptive)
    _check_cg(where, max_cg_steps, cg_tol)
    if adaptive:
        check_scalar(where, "damping", damping, low=0.0, low_open=True,
                     fix="LM scales lambda by factors: start from 1e-3.")  # fmt: skip
    return realified(
        transform(
            _solve_init,
            _gn_update,
            damping=damping,
            adaptive=adaptive,
            max_cg_steps=max_cg_steps,
            cg_tol=cg_tol,
        ),
    )


def _hf_update(
    updates, state, params=None, *, damping, curvature, max_cg_steps, cg_tol, adaptive,
    warm_start, **extra,
):  # fmt: skip
    where = "gradopt.scale_by_hessian_free"
    del damping
    require_params(where, params)
    if curvature == "hessian":
        value_fn = require(where, "value_fn", extra)
        kwargs = fn_kwargs(value_fn, extra)

        def loss(w):
            return as_compute(value_fn(w, **kwargs))

        _, product = jax.linearize(jax.grad(loss), params)
    else:
        residual_fn = require(where, "residual_fn", extra)
        kwargs = fn_kwargs(residual_fn, extra)

        def residuals(w):
            return residual_fn(w, **kwargs)

        def loss(w):
            return _sq(residuals(w))

        _, jvp = jax.linearize(residuals, params)
        vjp = jax.linear_transpose(jvp, params)

        def product(v):
            return vjp(jvp(v))[0]

    lam = state.damping

    def matvec(v):
        bv = product(_like(v, params))
        return jax.tree.map(lambda a, b: as_compute(a) + lam.astype(jnp.result_type(b)) * b, bv, v)

    g = jax.tree.map(as_compute, updates)
    x0 = jax.tree.map(lambda p: warm_start * as_compute(p), state.previous)
    d, res, k = conjugate_gradient(matvec, g, x0, max_steps=max_cg_steps, tol=cg_tol)
    if not adaptive:
        return _finish(updates, state, d, True, lam, state.nu, k)
    # Martens (2010), section 4.1: Levenberg-Marquardt style adaptation of lambda
    f0 = loss(params) if extra.get("value") is None else as_compute(extra["value"])
    f1 = loss(_step(params, d))
    pred = _predicted_decrease(g, d, res, lam).astype(jnp.result_type(f0))
    rho = (f0 - f1) / jnp.where(pred > 0.0, pred, 1.0)
    accepted = (pred > 0.0) & (rho > 0.0) & jnp.isfinite(f1)
    new_lam = jnp.where(rho < 0.25, lam * 1.5, jnp.where(rho > 0.75, lam * (2.0 / 3.0), lam))
    return _finish(updates, state, d, accepted, new_lam, state.nu, k)


def scale_by_hessian_free(
    damping=1.0,
    *,
    curvature: str = "hessian",
    adaptive: bool = True,
    max_cg_steps: int = 50,
    cg_tol=5e-4,
    warm_start=0.95,
) -> GradientTransformation:
    """Truncated-Newton step by CG on Hessian (or Gauss-Newton) products; see
    :func:`gradopt.hessian_free`.

    Args:
      damping: ``lambda >= 0`` (the initial one when ``adaptive``).
      curvature: ``"hessian"`` (needs ``value_fn=``) or ``"gauss_newton"``
        (needs ``residual_fn=``). Keyword only.
      adaptive: adapt ``lambda`` by the reduction ratio and reject steps that
        do not lower the loss. Keyword only.
      max_cg_steps: CG iteration cap, an int >= 1.
      cg_tol: CG stops when ``|residual| <= cg_tol |g|``.
      warm_start: CG starts from ``warm_start`` times the previous solution,
        in [0, 1].
    """
    where = "gradopt.scale_by_hessian_free"
    check_scalar(where, "damping", damping, low=0.0, fix="Use 1.0.")
    check_choice(where, "curvature", curvature, ("hessian", "gauss_newton"))
    check_flag(where, "adaptive", adaptive)
    _check_cg(where, max_cg_steps, cg_tol)
    check_scalar(where, "warm_start", warm_start, low=0.0, high=1.0, fix="Martens uses 0.95.")
    return realified(
        transform(
            _solve_init,
            _hf_update,
            damping=damping,
            curvature=curvature,
            adaptive=adaptive,
            max_cg_steps=max_cg_steps,
            cg_tol=cg_tol,
            warm_start=warm_start,
        ),
    )
