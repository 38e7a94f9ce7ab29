"""The zoom line search (strong Wolfe conditions): Nocedal & Wright, Algorithms 3.5 and 3.6.

Along the direction ``u`` (the incoming updates) from the parameters ``w``,
with ``phi(eta) = f(w + eta * u)``, the search looks for a step size ``eta``
that satisfies

* sufficient decrease (Armijo): ``phi(eta) <= phi(0) + c1 * eta * phi'(0)``,
  or the approximate form of Hager & Zhang (2006) once the values stop being
  informative: ``phi'(eta) <= (2 * c1 - 1) * phi'(0)`` and
  ``phi(eta) <= phi(0) + approx_dec_rtol * |phi(0)|``;
* small curvature (strong Wolfe): ``|phi'(eta)| <= c2 * |phi'(0)|``.

Phase 1 (bracketing, Algorithm 3.5) tries ``eta_0`` (1, or the previous step)
and grows it by ``increase_factor`` until an interval ``[low, high]`` is known
to hold an acceptable step. Phase 2 (zoom, Algorithm 3.6) shrinks the interval:
the next trial is the minimiser of the cubic through ``low``, ``high`` and the
last discarded end point, if it lies well inside (20 % margins); else that of
the quadratic through ``low`` and ``high`` (10 % margins); else the midpoint.
Each trial costs one value and one gradient of ``f``. If the budget of trials
runs out (or the interval shrinks below ``stepsize_precision``), the best step
that gave sufficient decrease is taken.

The decisions and constants are those of :func:`optax.scale_by_zoom_linesearch`,
so that gradopt's L-BFGS follows optax's trajectory (tested to rtol 1e-5).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, transform
from gradopt.core._checks import check_choice, check_scalar
from gradopt.core._numerics import as_compute, compute_dtype
from gradopt.transforms._objective import add_counts, fn_kwargs, require, require_params, tree_vdot


class ZoomLinesearchInfo(NamedTuple):
    """Diagnostics: the trials of all searches so far (int32, saturating; each one value
    and one gradient of the objective), and the two errors at the last chosen step."""

    total_trials: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array


class ZoomLinesearchState(NamedTuple):
    """State of :func:`scale_by_zoom_linesearch`.

    ``value`` and ``grad`` are the loss and its gradient at the accepted point
    (the next parameters), so a training loop can reuse them instead of
    evaluating the loss again. ``grad`` is ``jax.grad``'s: for complex
    parameters, conjugate it before passing it on, as any other gradient.
    """

    learning_rate: jax.Array
    value: jax.Array
    grad: object
    info: ZoomLinesearchInfo


class _Trial(NamedTuple):
    """The search's loop carry (scalars are in the loss's dtype)."""

    count: jax.Array  # type: ignore[assignment]
    stepsize: jax.Array
    value: jax.Array
    grad: object
    slope: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array
    bracketed: jax.Array
    done: jax.Array
    failed: jax.Array
    low: jax.Array
    value_low: jax.Array
    slope_low: jax.Array
    high: jax.Array
    value_high: jax.Array
    slope_high: jax.Array
    ref: jax.Array  # the end point discarded last: the cubic's third point
    value_ref: jax.Array
    safe_stepsize: jax.Array  # the best step with sufficient decrease so far
    safe_value: jax.Array
    safe_grad: object


def _cubic_minimiser(a, fa, da, b, fb, c, fc):
    """Critical point of the cubic through (a, fa), (b, fb), (c, fc) with slope da at a."""
    db, dc = b - a, c - a
    rb, rc = fb - fa - da * db, fc - fa - da * dc
    denom = (db * dc) ** 2 * (db - dc)
    p3 = (dc**2 * rb - db**2 * rc) / denom
    p2 = (-(dc**3) * rb + db**3 * rc) / denom
    return a + (-p2 + jnp.sqrt(p2 * p2 - 3.0 * p3 * da)) / (3.0 * p3)  # NaN if none


def _quadratic_minimiser(a, fa, da, b, fb):
    """Critical point of the quadratic through (a, fa), (b, fb) with slope da at a."""
    db = b - a
    return a - da / (2.0 * ((fb - fa - da * db) / db**2))


def _pick(cond, yes, no):
    return jax.tree.map(lambda y, n: jnp.where(cond, y, n), yes, no)


def _zoom_init(params, **hyper):
    del hyper
    leaves = jax.tree.leaves(params)  # no leaves: float32 scalars, empty updates
    first = jnp.result_type(leaves[0]) if leaves else jnp.float32
    dtype = compute_dtype(jnp.real(jnp.empty((), first)).dtype)
    zero_i = jnp.zeros([], jnp.int32)
    return ZoomLinesearchState(
        learning_rate=jnp.ones([], dtype),
        value=jnp.full([], jnp.inf, dtype),
        grad=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params),
        info=ZoomLinesearchInfo(zero_i, jnp.full([], jnp.inf, dtype), jnp.full([], jnp.inf, dtype)),
    )


def _zoom_update(
    updates,
    state,
    params=None,
    *,
    max_linesearch_steps,
    max_learning_rate,
    tol,
    increase_factor,
    slope_rtol,
    curv_rtol,
    approx_dec_rtol,
    stepsize_precision,
    initial_guess_strategy,
    **extra,
):
    where = "gradopt.scale_by_zoom_linesearch"
    require_params(where, params)
    value_fn = require(where, "value_fn", extra)
    kwargs = fn_kwargs(value_fn, extra)
    value_and_grad = jax.value_and_grad(value_fn)
    # Gradients: ``grad=`` follows the update convention (for complex
    # parameters the conjugate of jax.grad, the steepest-ascent direction);
    # the gradients the search computes, and keeps in its state, are
    # jax.grad's own. The slope along ``u`` is ``Re <conj(jax.grad), u>``.
    value0, grad0 = extra.get("value"), extra.get("grad")
    if value0 is None or grad0 is None:  # not given: one more evaluation
        value0, grad0 = value_and_grad(params, **kwargs)
    else:
        grad0 = _conj(grad0)
    dtype = state.learning_rate.dtype
    value0 = jnp.asarray(value0, dtype)
    slope0 = tree_vdot(_conj(grad0), updates).astype(dtype)

    def on_line(eta):
        point = jax.tree.map(
            lambda w, u: _axpy(eta, u, w),
            params,
            updates,
        )
        f, g = value_and_grad(point, **kwargs)
        return jnp.asarray(f, dtype), g, tree_vdot(_conj(g), updates).astype(dtype)

    def decrease_error(eta, f, d):
        err = f - value0 - slope_rtol * eta * slope0  # Armijo
        if approx_dec_rtol is not None:  # Hager & Zhang's approximate Wolfe
            approx = jnp.maximum(
                d - (2 * slope_rtol - 1.0) * slope0,
                f - value0 - approx_dec_rtol * jnp.abs(value0),
            )
            err = jnp.minimum(approx, err)
        err = jnp.maximum(err, 0.0)
        return jnp.where(jnp.isnan(err), jnp.inf, err)

    def curvature_error(d):
        err = jnp.maximum(jnp.abs(d) - curv_rtol * jnp.abs(slope0), 0.0)
        return jnp.where(jnp.isnan(err), jnp.inf, err)

    def bracket(s):
        """Algorithm 3.5: grow the step until an interval holds an acceptable one."""
        eta = jnp.where(s.count == 0, s.stepsize_guess, increase_factor * s.stepsize)
        at_max = jnp.asarray(False)
        if max_learning_rate is not None:
            at_max = eta >= max_learning_rate
            eta = jnp.minimum(eta, max_learning_rate)
        f, g, d = on_line(eta)
        dec, curv = decrease_error(eta, f, d), curvature_error(d)
        good = jnp.maximum(dec, curv) <= tol
        safe = _pick(dec <= tol, (eta, f, g), (s.safe_stepsize, s.safe_value, s.safe_grad))
        new_is_high = (dec > 0.0) | ((f >= s.value) & (s.count > 0))
        new_is_low = (d >= 0.0) & ~new_is_high
        low, high = _pick(
            new_is_low,
            ((eta, f, d), (s.stepsize, s.value, s.slope)),
            ((s.stepsize, s.value, s.slope), (eta, f, d)),
        )
        bracketed = new_is_high | new_is_low | good
        done = good | (at_max & ~bracketed)
        return s.trial._replace(
            stepsize=eta, value=f, grad=g, slope=d, decrease_error=dec, curvature_error=curv,
            bracketed=bracketed, done=done,
            failed=(s.count + 1 >= max_linesearch_steps) & ~done,
            low=low[0], value_low=low[1], slope_low=low[2],
            high=high[0], value_high=high[1], slope_high=high[2],
            ref=low[0], value_ref=low[1],
            safe_stepsize=safe[0], safe_value=safe[1], safe_grad=safe[2],
        )  # fmt: skip

    def zoom(s):
        """Algorithm 3.6: shrink [low, high] by safeguarded interpolation."""
        t = s.trial
        width = jnp.abs(t.high - t.low)
        left, right = jnp.minimum(t.low, t.high), jnp.maximum(t.low, t.high)
        cubic = _cubic_minimiser(
            t.low, t.value_low, t.slope_low, t.high, t.value_high, t.ref, t.value_ref
        )
        quad = _quadratic_minimiser(t.low, t.value_low, t.slope_low, t.high, t.value_high)
        use_cubic = (cubic > left + 0.2 * width) & (cubic < right - 0.2 * width)
        use_quad = ~use_cubic & (quad > left + 0.1 * width) & (quad < right - 0.1 * width)
        eta = jnp.where(use_cubic, cubic, jnp.where(use_quad, quad, (t.low + t.high) / 2.0))
        f, g, d = on_line(eta)
        dec, curv = decrease_error(eta, f, d), curvature_error(d)
        done = jnp.maximum(dec, curv) <= tol
        safe = _pick(
            (dec <= tol) & (f < t.safe_value),
            (eta, f, g),
            (t.safe_stepsize, t.safe_value, t.safe_grad),
        )
        high_to_new = (dec > 0.0) | (f >= t.value_low)
        high_to_low = (d * (t.high - t.low) >= 0.0) & ~high_to_new
        trial, old_low, old_high = (eta, f, d), (t.low, t.value_low, t.slope_low), (
            t.high, t.value_high, t.slope_high,
        )  # fmt: skip
        high = _pick(high_to_new, trial, _pick(high_to_low, old_low, old_high))
        low = _pick(high_to_new, old_low, trial)
        ref = _pick(high_to_new | high_to_low, old_high[:2], old_low[:2])
        stuck = (s.count + 1 >= max_linesearch_steps) | (
            (width <= stepsize_precision) & (safe[0] > 0.0)
        )
        return t._replace(
            stepsize=eta, value=f, grad=g, slope=d, decrease_error=dec, curvature_error=curv,
            done=done, failed=stuck & ~done,
            low=low[0], value_low=low[1], slope_low=low[2],
            high=high[0], value_high=high[1], slope_high=high[2],
            ref=ref[0], value_ref=ref[1],
            safe_stepsize=safe[0], safe_value=safe[1], safe_grad=safe[2],
        )  # fmt: skip

    def body(carry):
        guess, t = carry
        s = _Loop(t.count, guess, t)
        t = jax.lax.cond(t.bracketed, zoom, bracket, s)
        # out of trials: fall back on the best step with sufficient decrease
        fallback = t.failed & ((t.safe_stepsize > 0.0) | jnp.isinf(t.decrease_error))
        chosen = _pick(
            fallback, (t.safe_stepsize, t.safe_value, t.safe_grad), (t.stepsize, t.value, t.grad)
        )
        t = t._replace(stepsize=chosen[0], value=chosen[1], grad=chosen[2])
        return guess, t._replace(count=t.count + 1)

    def cond(carry):
        t = carry[1]
        return ~(t.done | t.failed)

    if initial_guess_strategy == "one":
        guess = jnp.ones([], dtype)
    else:
        guess = state.learning_rate
    zero, inf = jnp.zeros([], dtype), jnp.full([], jnp.inf, dtype)
    false = jnp.asarray(False)
    start = _Trial(
        count=jnp.zeros([], jnp.int32), stepsize=zero, value=value0, grad=grad0, slope=slope0,
        decrease_error=inf, curvature_error=inf, bracketed=false, done=false, failed=false,
        low=zero, value_low=value0, slope_low=slope0, high=zero, value_high=value0,
        slope_high=slope0, ref=zero, value_ref=value0,
        safe_stepsize=zero, safe_value=value0, safe_grad=grad0,
    )  # fmt: skip
    start = start._replace(grad=_as_like(grad0, params), safe_grad=_as_like(grad0, params))
    _, final = jax.lax.while_loop(cond, body, (guess, start))
    eta = final.stepsize
    new_updates = jax.tree.map(lambda u: _axpy(eta, u, jnp.zeros_like(u)), updates)
    info = ZoomLinesearchInfo(
        add_counts(state.info.total_trials, final.count),
        final.decrease_error.astype(state.info.decrease_error.dtype),
        final.curvature_error.astype(state.info.curvature_error.dtype),
    )
    new_state = ZoomLinesearchState(
        learning_rate=eta.astype(dtype),
        value=final.value.astype(dtype),
        grad=_as_like(final.grad, state.grad),
        info=info,
    )
    return new_updates, new_state


class _Loop(NamedTuple):
    count: jax.Array  # type: ignore[assignment]
    stepsize_guess: jax.Array
    trial: _Trial

    # the phases read the previous trial through these
    @property
    def stepsize(self):
        return self.trial.stepsize

    @property
    def value(self):
        return self.trial.value

    @property
    def slope(self):
        return self.trial.slope

    @property
    def safe_stepsize(self):
        return self.trial.safe_stepsize

    @property
    def safe_value(self):
        return self.trial.safe_value

    @property
    def safe_grad(self):
        return self.trial.safe_grad


def _axpy(a, x, y):
    """``a * x + y`` in the compute dtype of ``x``, cast to ``y``'s dtype."""
    cx, cy = as_compute(x), as_compute(y)
    return (a.astype(cx.dtype) * cx + cy.astype(cx.dtype)).astype(jnp.result_type(y))


def _conj(tree):
    """The complex conjugate of every leaf (real leaves unchanged)."""
    return jax.tree.map(jnp.conj, tree)


def _as_like(tree, like):
    return jax.tree.map(lambda x, y: jnp.asarray(x).astype(jnp.result_type(y)), tree, like)


def scale_by_zoom_linesearch(
    max_linesearch_steps: int,
    max_learning_rate=None,
    tol=0.0,
    increase_factor=2.0,
    slope_rtol=1e-4,
    curv_rtol=0.9,
    approx_dec_rtol=1e-6,
    stepsize_precision=1e-5,
    initial_guess_strategy: str = "keep",
) -> GradientTransformation:
    """Scale the updates by a step size that satisfies the strong Wolfe conditions.

    The search is described in this module's docstring. ``update`` needs the
    objective (see :mod:`gradopt.transforms._objective`)::

        updates, state = ls.update(direction, state, params, value=f(params),
                                   grad=grad_f(params), value_fn=f)

    ``value`` and ``grad`` (the loss and its gradient at ``params``) may be
    left out; they are then computed from ``value_fn`` (one more evaluation).

    Args:
      max_linesearch_steps: most trials per step (each one value and one
        gradient of the objective), an int >= 1.
      max_learning_rate: the largest step size tried (None: unbounded).
      tol: slack on both conditions, >= 0.
      increase_factor: growth of the step while bracketing, > 1.
      slope_rtol: ``c1`` of the sufficient decrease condition, in (0, 1).
      curv_rtol: ``c2`` of the curvature condition, in (``slope_rtol``, 1).
      approx_dec_rtol: relative slack of Hager & Zhang's approximate decrease
        condition, >= 0 (None: Armijo's condition only).
      stepsize_precision: stop zooming (taking the best safe step) once the
        interval is this short, >= 0.
      initial_guess_strategy: ``"one"`` (try 1 first, for quasi-Newton
        directions) or ``"keep"`` (try the previous step size first).

    Returns:
      A transform whose state holds the step size taken, and the value and
      gradient at the new parameters.

    Note:
      The same search as :func:`optax.scale_by_zoom_linesearch` with the same
      arguments and defaults; optax's ``verbose`` diagnostics are not offered
      (the state's ``info`` holds the errors). SciPy's ``line_search_wolfe2``
      uses the same two phases without the approximate condition.

      Complex parameters: ``grad=`` is the conjugate of ``jax.grad`` (the
      steepest-ascent direction, as for the update); the slope along ``u`` is
      ``Re <conj(jax.grad), u>``, and the state's ``grad`` is ``jax.grad``'s
      own at the new parameters (conjugate it before reusing it as ``grad=``).

    References:
      Nocedal & Wright, Numerical Optimization, 2nd ed., Springer 2006,
      Algorithms 3.5 and 3.6; Hager & Zhang, Algorithm 851: CG_DESCENT, ACM
      TOMS 2006 (the approximate Wolfe condition).
    """
    where = "gradopt.scale_by_zoom_linesearch"
    if isinstance(max_linesearch_steps, bool) or not isinstance(max_linesearch_steps, int):
        raise TypeError(
            f"{where}: max_linesearch_steps must be an int >= 1, got {max_linesearch_steps!r}."
        )
    if max_linesearch_steps < 1:
        raise ValueError(
            f"{where}: max_linesearch_steps must be >= 1, got {max_linesearch_steps}. Use 20."
        )
    if max_learning_rate is not None:
        check_scalar(where, "max_learning_rate", max_learning_rate, low=0.0, low_open=True)
    check_scalar(where, "tol", tol, low=0.0)
    check_scalar(where, "increase_factor", increase_factor, low=1.0, low_open=True, fix="Use 2.")
    check_scalar(where, "slope_rtol", slope_rtol, low=0.0, high=1.0, low_open=True, high_open=True)
    check_scalar(where, "curv_rtol", curv_rtol, low=0.0, high=1.0, low_open=True, high_open=True)
    if approx_dec_rtol is not None:
        check_scalar(where, "approx_dec_rtol", approx_dec_rtol, low=0.0)
    check_scalar(where, "stepsize_precision", stepsize_precision, low=0.0)
    check_choice(where, "initial_guess_strategy", initial_guess_strategy, ("one", "keep"))
    return transform(
        _zoom_init,
        _zoom_update,
        max_linesearch_steps=max_linesearch_steps,
        max_learning_rate=max_learning_rate,
        tol=tol,
        increase_factor=increase_factor,
        slope_rtol=slope_rtol,
        curv_rtol=curv_rtol,
        approx_dec_rtol=approx_dec_rtol,
        stepsize_precision=stepsize_precision,
        initial_guess_strategy=initial_guess_strategy,
    )
