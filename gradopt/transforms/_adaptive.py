"""Adaptive scaling: Adagrad's sum of squares, RMSprop, Adadelta's unit correction,
AdaMax's infinity norm, and the denominators Adam and AdaMax divide by.

Every stage reads only its input. ``scale_by_*`` divide their input by a
per-coordinate statistic of that same input (RMSprop, Adagrad: the input is
the gradient). ``root_mean_square`` and ``infinity_norm`` output the statistic
itself, for :func:`gradopt.divide` to divide another statistic of the same
gradient by it (Adam: ``divide(chain(ema(b1), bias_correction(b1)),
root_mean_square(b2, eps=eps, debias=True))``). The full update rules are on
the named optimizers (:func:`gradopt.adagrad`, :func:`gradopt.rmsprop`,
:func:`gradopt.adadelta`, :func:`gradopt.adam`, :func:`gradopt.adamax`).

Statistics of ``g**2`` saturate at the largest finite value of their compute
dtype instead of overflowing (a finite gradient above 1.8e19 in float32), and
at that of their storage dtype when stored, so a huge but finite gradient never
makes the state inf or the updates NaN, and the statistic decays back at its
rate (``docs/guarantees.md``).

Complex updates: every statistic here is one of ``|g|**2 = g * conj(g)`` (or
``|g|``), real and stored in the parameter's real dtype; the outputs that divide
``g`` by it are complex (``docs/complex.md``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation
from gradopt.core._checks import check_decay, check_dtype, check_eps, check_flag, check_scalar
from gradopt.core._elementwise import Elementwise, elementwise, no_step
from gradopt.core._numerics import (
    abs_sq,
    cast,
    clamp,
    div_real,
    full_like,
    hyper,
    increment,
    is_complex,
    mul_real,
    one_minus,
    one_minus_power,
    root_of_max,
    saturate,
    scalar_dtype,
    state_zeros,
    zero_count,
)

PyTree = Any


def _root(x, eps, eps_inside):
    """``sqrt(x) + eps`` or ``sqrt(x + eps)``."""
    e = hyper(eps, x)
    return jnp.sqrt(x + e) if eps_inside else jnp.sqrt(x) + e


def _moving(decay, x, m):
    return hyper(decay, x) * m + one_minus(decay, x) * x


def _moving_square(decay, x, m):
    """The moving average of ``x**2``, at most the dtype's largest finite value.

    ``x`` is clipped where its square would overflow, so ``x**2`` and the convex
    combination stay finite. (Clipping the input rather than the result keeps
    the expression one that XLA:CPU fuses like optax's: a ``minimum`` on the
    result made it recompute the average in the parameter's loop, from a copy
    of the old state, one more array pass per leaf.)
    """
    if is_complex(x.dtype):
        x2 = abs_sq(x)
        return _moving(decay, saturate(x2, x2.dtype), m)
    bound = root_of_max(x.dtype)
    x = clamp(x, bound)
    return _moving(decay, x * x, m)


# ----------------------------------------------------------------------------
# Adagrad


class SumOfSquaresState(NamedTuple):
    """State of :func:`scale_by_sum_of_squares`: the accumulated ``g**2``."""

    sum_of_squares: PyTree


def _sos_init(params, *, eps, initial_accumulator_value, eps_inside_sqrt):
    del eps, eps_inside_sqrt
    return SumOfSquaresState(full_like(params, initial_accumulator_value, real=True))


def _sos_leaf(x, fields, ctx, p, *, eps, initial_accumulator_value, eps_inside_sqrt):
    del ctx, p, initial_accumulator_value
    x2 = abs_sq(x)
    s = saturate(fields["sum_of_squares"] + saturate(x2, x2.dtype), x2.dtype)
    return div_real(x, _root(s, eps, eps_inside_sqrt)), {"sum_of_squares": s}


_SOS = Elementwise(
    "gradopt.scale_by_sum_of_squares", _sos_init, no_step, _sos_leaf, ("sum_of_squares",)
)


def scale_by_sum_of_squares(
    *, eps=1e-10, initial_accumulator_value=0.0, eps_inside_sqrt: bool = False
) -> GradientTransformation:
    """Adagrad's scaling: ``G += g**2``; outputs ``u / (sqrt(G) + eps)``.

    Args:
      eps: added to the denominator, > 0.
      initial_accumulator_value: the starting value of ``G``, >= 0.
      eps_inside_sqrt: divide by ``sqrt(G + eps)`` instead.

    Returns:
      A gradient transformation with state :class:`SumOfSquaresState`.
    """
    where = "gradopt.scale_by_sum_of_squares"
    check_eps(where, eps)
    check_scalar(
        where,
        "initial_accumulator_value",
        initial_accumulator_value,
        low=0.0,
        fix="Use 0.0 (the paper) or 0.1 (Keras' default).",
    )
    check_flag(where, "eps_inside_sqrt", eps_inside_sqrt)
    return elementwise(
        _SOS,
        eps=eps,
        initial_accumulator_value=initial_accumulator_value,
        eps_inside_sqrt=eps_inside_sqrt,
    )


# ----------------------------------------------------------------------------
# RMSprop, and Adam's denominator


class ScaleByRmsState(NamedTuple):
    """State of :func:`scale_by_rms` and :func:`root_mean_square`.

    Attributes:
      nu: the moving average of ``g**2``.
      mean: the moving average of ``g`` (``centered=True``), else None.
      nu_max: the running maximum of ``nu`` (``amsgrad=True``), else None.
      count: the number of updates seen.
    """

    nu: PyTree
    mean: PyTree
    nu_max: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _rms_init(params, *, decay, eps, eps_inside_sqrt, centered, debias, amsgrad, dtype):
    del decay, eps, eps_inside_sqrt, debias
    return ScaleByRmsState(
        nu=state_zeros(params, dtype, real=True),
        mean=state_zeros(params, dtype) if centered else None,
        nu_max=state_zeros(params, dtype, real=True) if amsgrad else None,
        count=zero_count(),
    )


def _rms_step(state, *, decay, eps, eps_inside_sqrt, centered, debias, amsgrad, dtype):
    """Per step: the count and, with ``debias``, ``1 / (1 - decay**t)`` and its root."""
    del eps, centered, amsgrad, dtype
    count = increment(state.count)
    if not debias:
        return None, {"count": count}
    correction = one_minus_power(decay, count, jnp.ones([], scalar_dtype()))
    inverse = 1 / correction
    root_inverse = None if eps_inside_sqrt else jax.lax.rsqrt(correction)
    return (inverse, root_inverse), {"count": count}


def _rms_denominator(x, fields, ctx, *, decay, eps, eps_inside_sqrt, centered, debias, amsgrad):
    """The new statistics and ``sqrt(nu_hat) + eps`` (or ``sqrt(nu_hat + eps)``)."""
    nu = _moving_square(decay, x, fields["nu"])  # real, also for complex x
    new = {"nu": nu}
    second = nu
    if amsgrad:
        second = new["nu_max"] = jnp.maximum(nu, fields["nu_max"])
    if centered:
        # the mean of g, clipped where g**2 saturates, so that |mean|**2 <= nu
        bound = root_of_max(nu.dtype)
        mean = new["mean"] = _moving(decay, clamp(x, bound), fields["mean"])
        if debias:
            inverse = cast(ctx[0], nu)
            second, mean = saturate(second * inverse, nu.dtype), mul_real(mean, inverse)
        # nu - |mean|**2 >= 0 in exact arithmetic; clamp the rounding error.
        variance = jnp.maximum(second - saturate(abs_sq(mean), nu.dtype), 0)
        return _root(variance, eps, eps_inside_sqrt), new
    if debias and eps_inside_sqrt:
        return jnp.sqrt(saturate(second * cast(ctx[0], nu), nu.dtype) + hyper(eps, nu)), new
    if debias:
        # sqrt(nu / c) as sqrt(nu) * rsqrt(c): one root per element, no division.
        return jnp.sqrt(second) * cast(ctx[1], nu) + hyper(eps, nu), new
    return _root(second, eps, eps_inside_sqrt), new


def _rms_leaf(x, fields, ctx, p, **hyper):
    del p
    hyper.pop("dtype")
    root, new = _rms_denominator(x, fields, ctx, **hyper)
    return div_real(x, root), new


def _rms_root_leaf(x, fields, ctx, p, **hyper):
    del p
    hyper.pop("dtype")
    return _rms_denominator(x, fields, ctx, **hyper)


_RMS_FIELDS = ("nu", "mean", "nu_max")
_RMS = Elementwise("gradopt.scale_by_rms", _rms_init, _rms_step, _rms_leaf, _RMS_FIELDS)
_RMS_ROOT = Elementwise(
    "gradopt.root_mean_square", _rms_init, _rms_step, _rms_root_leaf, _RMS_FIELDS
)


def _check_rms(where, decay, eps, flags, dtype):
    check_decay(where, "decay", decay)
    check_eps(where, eps)
    for name, flag in flags.items():
        check_flag(where, name, flag)
    check_dtype(where, dtype)


def scale_by_rms(
    decay,
    *,
    eps,
    eps_inside_sqrt: bool = False,
    centered: bool = False,
    debias: bool = False,
    amsgrad: bool = False,
    dtype=None,
) -> GradientTransformation:
    """Divide the updates by the root of a moving average of ``g**2`` (RMSprop, Adam).

    ``nu = decay*nu + (1-decay)*g**2``; outputs ``u / (sqrt(nu) + eps)``.

    * ``centered``: also ``mean = decay*mean + (1-decay)*g`` and use
      ``nu - mean**2`` (Graves, 2013).
    * ``debias``: use ``nu / (1 - decay**t)`` (and likewise the mean).
    * ``amsgrad``: use the running maximum of ``nu``, debiased after the
      maximum as PyTorch and Keras do (Reddi et al., 2018).
    * ``eps_inside_sqrt``: ``sqrt(. + eps)`` instead of ``sqrt(.) + eps``.

    Args:
      decay: the decay rate in [0, 1) (RMSprop's ``decay``, Adam's ``b2``).
      eps: > 0. Keyword only, like the switches.
      dtype: storage dtype of the statistics (None: each leaf's dtype); the
        arithmetic is in float32 or wider.

    Returns:
      A gradient transformation with state :class:`ScaleByRmsState`.
    """
    flags = dict(eps_inside_sqrt=eps_inside_sqrt, centered=centered, debias=debias, amsgrad=amsgrad)
    _check_rms("gradopt.scale_by_rms", decay, eps, flags, dtype)
    return elementwise(_RMS, decay=decay, eps=eps, dtype=dtype, **flags)


def root_mean_square(
    decay,
    *,
    eps,
    eps_inside_sqrt: bool = False,
    centered: bool = False,
    debias: bool = False,
    amsgrad: bool = False,
    dtype=None,
) -> GradientTransformation:
    """Output the root of a moving average of the squared input: Adam's denominator.

    ``nu = decay*nu + (1-decay)*g**2``; outputs ``sqrt(nu) + eps`` (with
    ``debias``: ``sqrt(nu / (1 - decay**t)) + eps``), not the input divided by
    it. Used as the denominator of :func:`gradopt.divide`, so that the
    statistic is built from the same gradient as the numerator. The switches
    are those of :func:`scale_by_rms`, and ``scale_by_rms(...)`` equals
    ``divide(identity(), root_mean_square(...))``.

    Args:
      decay: the decay rate in [0, 1) (Adam's ``b2``).
      eps: > 0. Keyword only, like the switches.
      eps_inside_sqrt, centered, debias, amsgrad: as in :func:`scale_by_rms`.
      dtype: storage dtype of the statistics (None: each leaf's dtype).

    Returns:
      A gradient transformation with state :class:`ScaleByRmsState`.
    """
    flags = dict(eps_inside_sqrt=eps_inside_sqrt, centered=centered, debias=debias, amsgrad=amsgrad)
    _check_rms("gradopt.root_mean_square", decay, eps, flags, dtype)
    return elementwise(_RMS_ROOT, decay=decay, eps=eps, dtype=dtype, **flags)


# ----------------------------------------------------------------------------
# Adadelta


class AdadeltaState(NamedTuple):
    """State of :func:`scale_by_adadelta`: ``E[g**2]`` and ``E[dx**2]``."""

    grad_sq: PyTree
    delta_sq: PyTree


def _adadelta_init(params, *, rho, eps):
    del rho, eps
    return AdadeltaState(
        grad_sq=state_zeros(params, None, real=True), delta_sq=state_zeros(params, None, real=True)
    )


def _adadelta_leaf(x, fields, ctx, p, *, rho, eps):
    del ctx, p
    grad_sq = _moving_square(rho, x, fields["grad_sq"])  # real, also for complex x
    e = hyper(eps, grad_sq)
    dx = mul_real(x, jnp.sqrt(fields["delta_sq"] + e) / jnp.sqrt(grad_sq + e))
    delta_sq = _moving_square(rho, dx, fields["delta_sq"])
    return dx, {"grad_sq": grad_sq, "delta_sq": delta_sq}


_ADADELTA = Elementwise(
    "gradopt.scale_by_adadelta", _adadelta_init, no_step, _adadelta_leaf, ("grad_sq", "delta_sq")
)


def scale_by_adadelta(rho, *, eps) -> GradientTransformation:
    """Adadelta's unit correction (Zeiler, 2012).

    ``E[g**2] = rho*E[g**2] + (1-rho)*g**2``;
    ``dx = sqrt(E[dx**2] + eps) / sqrt(E[g**2] + eps) * u``;
    ``E[dx**2] = rho*E[dx**2] + (1-rho)*dx**2``; outputs ``dx``. The sign is
    that of the gradient: follow with ``scale_by_learning_rate(1.0)`` to descend.

    Args:
      rho: the decay rate in [0, 1).
      eps: > 0. Keyword only.

    Returns:
      A gradient transformation with state :class:`AdadeltaState`.
    """
    check_decay("gradopt.scale_by_adadelta", "rho", rho)
    check_eps("gradopt.scale_by_adadelta", eps)
    return elementwise(_ADADELTA, rho=rho, eps=eps)


# ----------------------------------------------------------------------------
# AdaMax


class MaxNormState(NamedTuple):
    """State of :func:`scale_by_max_norm` and :func:`infinity_norm`: the weighted infinity norm."""

    norm: PyTree


def _max_init(params, *, decay, eps, eps_inside_max):
    del decay, eps, eps_inside_max
    return MaxNormState(norm=state_zeros(params, None, real=True))


def _max_denominator(x, fields, *, decay, eps, eps_inside_max):
    a = jnp.abs(x)
    if eps_inside_max:
        a = a + hyper(eps, a)
    n = jnp.maximum(hyper(decay, a) * fields["norm"], a)
    return (n if eps_inside_max else n + hyper(eps, n)), {"norm": n}


def _max_leaf(x, fields, ctx, p, **hyper):
    del ctx, p
    d, new = _max_denominator(x, fields, **hyper)
    return div_real(x, d), new


def _max_root_leaf(x, fields, ctx, p, **hyper):
    del ctx, p
    return _max_denominator(x, fields, **hyper)


_MAX = Elementwise("gradopt.scale_by_max_norm", _max_init, no_step, _max_leaf, ("norm",))
_MAX_NORM = Elementwise("gradopt.infinity_norm", _max_init, no_step, _max_root_leaf, ("norm",))


def _check_max(where, decay, eps, eps_inside_max):
    check_decay(where, "decay", decay)
    check_eps(where, eps)
    check_flag(where, "eps_inside_max", eps_inside_max)


def scale_by_max_norm(decay, *, eps, eps_inside_max: bool = False) -> GradientTransformation:
    """AdaMax's infinity norm (Kingma & Ba, 2015, section 7.1).

    ``n = max(decay*n, |g|)``; outputs ``u / (n + eps)``. With
    ``eps_inside_max=True`` (PyTorch): ``n = max(decay*n, |g| + eps)`` and the
    output is ``u / n``.

    Args:
      decay: the decay rate in [0, 1) (AdaMax's ``b2``).
      eps: > 0. Keyword only.
      eps_inside_max: put eps inside the maximum, as torch.optim.Adamax does.

    Returns:
      A gradient transformation with state :class:`MaxNormState`.
    """
    _check_max("gradopt.scale_by_max_norm", decay, eps, eps_inside_max)
    return elementwise(_MAX, decay=decay, eps=eps, eps_inside_max=eps_inside_max)


def infinity_norm(decay, *, eps, eps_inside_max: bool = False) -> GradientTransformation:
    """Output AdaMax's weighted infinity norm of the input (its denominator).

    ``n = max(decay*n, |g|)``; outputs ``n + eps`` (with ``eps_inside_max``:
    ``n = max(decay*n, |g| + eps)``, outputs ``n``). The denominator of
    :func:`gradopt.divide` in :func:`gradopt.adamax`;
    ``scale_by_max_norm(...)`` equals ``divide(identity(), infinity_norm(...))``.

    Args:
      decay: the decay rate in [0, 1) (AdaMax's ``b2``).
      eps: > 0. Keyword only.
      eps_inside_max: put eps inside the maximum, as torch.optim.Adamax does.

    Returns:
      A gradient transformation with state :class:`MaxNormState`.
    """
    _check_max("gradopt.infinity_norm", decay, eps, eps_inside_max)
    return elementwise(_MAX_NORM, decay=decay, eps=eps, eps_inside_max=eps_inside_max)
