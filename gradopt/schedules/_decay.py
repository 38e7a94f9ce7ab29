"""Monotone decay schedules: constant, linear, piecewise constant, step, multistep,
exponential, inverse time and polynomial.

Every schedule is a :class:`gradopt.Bound` of a module-level function: a callable
``step -> value`` that compares by value. ``k`` below is the step (0 first).
"""

from __future__ import annotations

import jax.numpy as jnp

from gradopt.core._base import Bound
from gradopt.core._checks import check_flag, check_scalar
from gradopt.schedules._common import (
    STEPS_FIX,
    as_float,
    ceil_div,
    check_boundaries,
    check_nonnegative,
    check_positive,
    count_reached,
    floor_div,
)

RATE_FIX = "decay_rate is a non-negative factor such as 0.5."


def _steps(count):
    return as_float(count)


def _constant(count, *, value):
    return jnp.full(jnp.shape(count), as_float(value))


def constant(value) -> Bound:
    """The schedule that returns ``value`` at every step.

    Args:
      value: the value (a number or a scalar array).

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> round(float(schedules.constant(0.1)(7)), 4)
      0.1
    """
    check_scalar("gradopt.schedules.constant", "value", value)
    return Bound(_constant, value=value)


def _linear(count, *, init_value, end_value, transition_steps):
    alpha = jnp.clip(_steps(count) / as_float(transition_steps), 0.0, 1.0)
    return (1.0 - alpha) * as_float(init_value) + alpha * as_float(end_value)


def linear(init_value, end_value, transition_steps) -> Bound:
    """Linear decay from ``init_value`` to ``end_value`` over ``transition_steps``, then constant.

    The form of Goodfellow et al. (Deep Learning, section 8.3.1), with
    ``eps_0 = init_value``, ``eps_tau = end_value`` and ``tau = transition_steps``:

        alpha = min(k / tau, 1)
        eps_k = (1 - alpha) * eps_0 + alpha * eps_tau

    Matches torch ``LinearLR(start_factor=s, end_factor=e, total_iters=tau)`` on a
    base rate ``lr`` as ``linear(s * lr, e * lr, tau)``, and Keras
    ``PolynomialDecay(init, tau, end, power=1)``. It also serves as a linear
    warm-up when ``end_value > init_value``.

    Args:
      init_value: the value at step 0.
      end_value: the value from step ``transition_steps`` on.
      transition_steps: ``tau`` > 0.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.linear(0.1, 0.001, 1000)
      >>> [round(float(sched(k)), 4) for k in (0, 500, 1000, 2000)]
      [0.1, 0.0505, 0.001, 0.001]

    References:
      Goodfellow, Bengio and Courville, Deep Learning, MIT Press, 2016, section 8.3.1.
    """
    where = "gradopt.schedules.linear"
    check_scalar(where, "init_value", init_value)
    check_scalar(where, "end_value", end_value)
    check_positive(where, "transition_steps", transition_steps, fix=STEPS_FIX)
    return Bound(
        _linear, init_value=init_value, end_value=end_value, transition_steps=transition_steps
    )


def _piecewise_constant(count, *, boundaries, values):
    table = jnp.stack([as_float(v) for v in values])
    return jnp.take(table, count_reached(count, boundaries))


def piecewise_constant(boundaries, values) -> Bound:
    """A staircase of values: ``values[i]`` from step ``boundaries[i - 1]`` on.

        value_k = values[i]   where i = #{j : k >= boundaries[j]}

    The new value takes effect *at* the boundary step, as in torch's
    ``MultiStepLR``. Keras ``PiecewiseConstantDecay(boundaries, values)`` switches
    one step later (its ``values[i]`` holds for ``boundaries[i-1] < k <=
    boundaries[i]``): it equals ``piecewise_constant([b + 1 for b in boundaries],
    values)``.

    Args:
      boundaries: non-decreasing steps (a list or tuple).
      values: one more value than there are boundaries (learning rates, not scales).

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.piecewise_constant((100, 200), (0.1, 0.01, 0.001))
      >>> [round(float(sched(k)), 4) for k in (0, 100, 200)]
      [0.1, 0.01, 0.001]
    """
    where = "gradopt.schedules.piecewise_constant"
    boundaries = check_boundaries(where, "boundaries", boundaries, strict=False)
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{where}: values must be a list or tuple of numbers, got {values!r}.")
    values = tuple(values)
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            f"{where}: values must have one more entry than boundaries, got {len(values)} values "
            f"for {len(boundaries)} boundaries. Give the value before the first boundary too."
        )
    for i, v in enumerate(values):
        check_scalar(where, f"values[{i}]", v)
    return Bound(_piecewise_constant, boundaries=boundaries, values=values)


def _step_decay(count, *, init_value, step_size, gamma):
    exponent = floor_div(count, step_size)
    return as_float(init_value) * as_float(gamma) ** exponent


def step(init_value, step_size, gamma=0.1) -> Bound:
    """Step decay: multiply by ``gamma`` every ``step_size`` steps.

        value_k = init_value * gamma ** floor(k / step_size)

    Matches torch ``StepLR(step_size, gamma)`` on a base rate ``init_value``.

    Args:
      init_value: the value at step 0.
      step_size: steps between decays, > 0.
      gamma: the factor applied at each decay, >= 0.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.step(0.1, step_size=30, gamma=0.1)
      >>> [round(float(sched(k)), 4) for k in (0, 29, 30, 60)]
      [0.1, 0.1, 0.01, 0.001]
    """
    where = "gradopt.schedules.step"
    check_scalar(where, "init_value", init_value)
    check_positive(where, "step_size", step_size, fix=STEPS_FIX)
    check_nonnegative(where, "gamma", gamma, fix="gamma is a multiplicative factor such as 0.1.")
    return Bound(_step_decay, init_value=init_value, step_size=step_size, gamma=gamma)


def _multistep(count, *, init_value, milestones, gamma):
    reached = count_reached(count, milestones).astype(as_float(0).dtype)
    return as_float(init_value) * as_float(gamma) ** reached


def multistep(init_value, milestones, gamma=0.1) -> Bound:
    """Multiply by ``gamma`` at each milestone.

        value_k = init_value * gamma ** #{j : k >= milestones[j]}

    Matches torch ``MultiStepLR(milestones, gamma)``, including a milestone
    listed twice (it decays twice).

    Args:
      init_value: the value at step 0.
      milestones: non-decreasing steps at which the value is multiplied by ``gamma``.
      gamma: the factor applied at each milestone, >= 0.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.multistep(0.1, milestones=(30, 80), gamma=0.1)
      >>> [round(float(sched(k)), 4) for k in (0, 30, 80)]
      [0.1, 0.01, 0.001]
    """
    where = "gradopt.schedules.multistep"
    check_scalar(where, "init_value", init_value)
    milestones = check_boundaries(where, "milestones", milestones, strict=False)
    check_nonnegative(where, "gamma", gamma, fix="gamma is a multiplicative factor such as 0.1.")
    return Bound(_multistep, init_value=init_value, milestones=milestones, gamma=gamma)


def _decay_exponent(count, decay_steps, staircase):
    if staircase:
        return floor_div(count, decay_steps)
    return _steps(count) / as_float(decay_steps)


def _exponential(count, *, init_value, decay_rate, decay_steps, staircase):
    return as_float(init_value) * as_float(decay_rate) ** _decay_exponent(
        count, decay_steps, staircase
    )


def exponential(init_value, decay_rate, decay_steps=1, *, staircase=False) -> Bound:
    """Exponential decay, continuous or staircase.

        value_k = init_value * decay_rate ** (k / decay_steps)        (floor of the
                                                                       exponent if staircase)

    Matches Keras ``ExponentialDecay(init_value, decay_steps, decay_rate,
    staircase)`` (note the different argument order) and, with
    ``decay_steps=1``, torch ``ExponentialLR(gamma=decay_rate)``.

    Args:
      init_value: the value at step 0.
      decay_rate: the factor per ``decay_steps`` steps, >= 0.
      decay_steps: > 0.
      staircase: decay in whole multiples of ``decay_steps``; keyword only.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.exponential(0.1, decay_rate=0.5, decay_steps=1000)
      >>> [round(float(sched(k)), 4) for k in (0, 1000, 1500)]
      [0.1, 0.05, 0.0354]
    """
    where = "gradopt.schedules.exponential"
    check_scalar(where, "init_value", init_value)
    check_nonnegative(where, "decay_rate", decay_rate, fix=RATE_FIX)
    check_positive(where, "decay_steps", decay_steps, fix=STEPS_FIX)
    check_flag(where, "staircase", staircase)
    return Bound(
        _exponential,
        init_value=init_value,
        decay_rate=decay_rate,
        decay_steps=decay_steps,
        staircase=staircase,
    )


def _inverse_time(count, *, init_value, decay_rate, decay_steps, staircase):
    p = _decay_exponent(count, decay_steps, staircase)
    return as_float(init_value) / (1.0 + as_float(decay_rate) * p)


def inverse_time(init_value, decay_rate, decay_steps=1, *, staircase=False) -> Bound:
    """Inverse-time ("1/t") decay.

        value_k = init_value / (1 + decay_rate * k / decay_steps)    (floor of k /
                                                                       decay_steps if staircase)

    Matches Keras ``InverseTimeDecay(init_value, decay_steps, decay_rate,
    staircase)``.

    Args:
      init_value: the value at step 0.
      decay_rate: >= 0.
      decay_steps: > 0.
      staircase: use ``floor(k / decay_steps)``; keyword only.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.inverse_time(0.1, decay_rate=0.5, decay_steps=100)
      >>> [round(float(sched(k)), 4) for k in (0, 200)]  # 0.1 / (1 + 0.5 * k / 100)
      [0.1, 0.05]
    """
    where = "gradopt.schedules.inverse_time"
    check_scalar(where, "init_value", init_value)
    check_nonnegative(where, "decay_rate", decay_rate, fix=RATE_FIX)
    check_positive(where, "decay_steps", decay_steps, fix=STEPS_FIX)
    check_flag(where, "staircase", staircase)
    return Bound(
        _inverse_time,
        init_value=init_value,
        decay_rate=decay_rate,
        decay_steps=decay_steps,
        staircase=staircase,
    )


def _polynomial(count, *, init_value, end_value, decay_steps, power, cycle):
    k = _steps(count)
    steps = as_float(decay_steps)
    if cycle:
        steps = steps * jnp.maximum(ceil_div(count, decay_steps), 1.0)
    else:
        k = jnp.minimum(k, steps)
    init, end = as_float(init_value), as_float(end_value)
    # (steps - k) / steps rather than 1 - k / steps: exactly 0 at the end, where a
    # fractional power would magnify a rounding error.
    return (init - end) * ((steps - k) / steps) ** as_float(power) + end


def polynomial(init_value, end_value, decay_steps, power=1.0, *, cycle=False) -> Bound:
    """Polynomial decay from ``init_value`` to ``end_value`` over ``decay_steps``.

        value_k = (init_value - end_value) * (1 - min(k, T) / T) ** power + end_value

    with ``T = decay_steps``; with ``cycle=True``, ``T`` is instead
    ``decay_steps * max(ceil(k / decay_steps), 1)`` (the decay restarts from a
    lower peak). Matches Keras ``PolynomialDecay(init_value, decay_steps,
    end_value, power, cycle)`` and, with ``end_value=0``, torch
    ``PolynomialLR(total_iters=decay_steps, power)``.

    Args:
      init_value: the value at step 0.
      end_value: the value from step ``decay_steps`` on (without ``cycle``).
      decay_steps: > 0.
      power: the exponent, >= 0 (1 is linear).
      cycle: restart the decay every ``decay_steps``; keyword only.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.polynomial(0.1, 0.0, decay_steps=1000, power=2.0)
      >>> [round(float(sched(k)), 4) for k in (0, 500, 1000)]
      [0.1, 0.025, 0.0]
    """
    where = "gradopt.schedules.polynomial"
    check_scalar(where, "init_value", init_value)
    check_scalar(where, "end_value", end_value)
    check_positive(where, "decay_steps", decay_steps, fix=STEPS_FIX)
    check_nonnegative(where, "power", power, fix="Use 1.0 for a linear decay.")
    check_flag(where, "cycle", cycle)
    return Bound(
        _polynomial,
        init_value=init_value,
        end_value=end_value,
        decay_steps=decay_steps,
        power=power,
        cycle=cycle,
    )
