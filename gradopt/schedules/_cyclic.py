"""Cosine annealing (with restarts), linear warm-up and the one-cycle policy.

Every schedule is a :class:`gradopt.Bound` of a module-level function: a callable
``step -> value`` that compares by value. ``k`` below is the step (0 first).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from gradopt.core._base import Bound
from gradopt.core._checks import check_choice, check_flag, check_scalar
from gradopt.schedules._common import (
    STEPS_FIX,
    as_float,
    check_nonnegative,
    check_positive,
    mod_steps,
    shift_steps,
)


def _half_cosine(fraction):
    """(1 + cos(pi * fraction)) / 2: 1 at fraction 0, 0 at fraction 1."""
    return 0.5 * (1.0 + jnp.cos(math.pi * fraction))


def _cosine(count, *, init_value, decay_steps, end_value, cyclic):
    steps = as_float(decay_steps)
    if cyclic:  # the cosine has period 2T: reduce the step first (in integers if it is one)
        k = mod_steps(count, 2 * decay_steps)
    else:
        k = jnp.minimum(as_float(count), steps)
    init, end = as_float(init_value), as_float(end_value)
    return end + (init - end) * _half_cosine(k / steps)


def cosine(init_value, decay_steps, end_value=0.0, *, cyclic=False) -> Bound:
    """Cosine annealing from ``init_value`` to ``end_value`` over ``decay_steps``.

        value_k = end + (init - end) * (1 + cos(pi * min(k, T) / T)) / 2

    with ``T = decay_steps``. By default the value holds at ``end_value`` after
    ``T`` steps, as Keras ``CosineDecay(init_value, T, alpha)`` does with
    ``end_value = alpha * init_value``. With ``cyclic=True`` the ``min`` is
    dropped and the value follows the cosine back up to ``init_value`` at
    ``2 T`` and so on (the step is reduced modulo ``2 T`` in integers first, so
    the phase is exact at any step): torch ``CosineAnnealingLR(T_max=T, eta_min=end_value)``
    (whose closed form is this formula at every step). For warm restarts see
    :func:`cosine_with_restarts`; for Keras' ``warmup_target`` see :func:`warmup`.

    Args:
      init_value: the value at step 0.
      decay_steps: ``T`` > 0.
      end_value: the value at step ``T``.
      cyclic: keep following the cosine after ``T`` (torch); keyword only.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.cosine(0.1, decay_steps=10_000, end_value=1e-4)
      >>> [round(float(sched(k)), 4) for k in (0, 5_000, 10_000)]
      [0.1, 0.05, 0.0001]

    References:
      Loshchilov and Hutter, SGDR: Stochastic Gradient Descent with Warm
      Restarts, 2017, arXiv:1608.03983.
    """
    where = "gradopt.schedules.cosine"
    check_scalar(where, "init_value", init_value)
    check_positive(where, "decay_steps", decay_steps, fix=STEPS_FIX)
    check_scalar(where, "end_value", end_value)
    check_flag(where, "cyclic", cyclic)
    return Bound(
        _cosine, init_value=init_value, decay_steps=decay_steps, end_value=end_value, cyclic=cyclic
    )


def _period_start(first, mult, i):
    """Step at which period ``i`` starts: first * (1 + mult + ... + mult**(i-1))."""
    geometric = first * (mult**i - 1.0) / jnp.where(mult == 1.0, 1.0, mult - 1.0)
    return jnp.where(mult == 1.0, first * i, geometric)


def _cosine_with_restarts(count, *, init_value, first_period, end_value, period_mult, peak_decay):
    k = as_float(count)
    first, mult = as_float(first_period), as_float(period_mult)
    safe_mult = jnp.where(mult == 1.0, 2.0, mult)
    guess = jnp.where(
        mult == 1.0,
        jnp.floor(k / first),
        jnp.floor(jnp.log1p(k / first * (safe_mult - 1.0)) / jnp.log(safe_mult)),
    )
    # The logarithm can land a hair below an integer at a restart; fix the index
    # so that period_start(i) <= k < period_start(i + 1) holds exactly.
    i = jnp.where(k < _period_start(first, mult, guess), guess - 1.0, guess)
    i = jnp.where(k >= _period_start(first, mult, i + 1.0), i + 1.0, i)
    fraction = (k - _period_start(first, mult, i)) / (first * mult**i)
    init, end = as_float(init_value), as_float(end_value)
    return end + (init - end) * as_float(peak_decay) ** i * _half_cosine(fraction)


def cosine_with_restarts(
    init_value, first_period, end_value=0.0, *, period_mult=1.0, peak_decay=1.0
) -> Bound:
    """Cosine annealing with warm restarts (SGDR).

    Period ``i`` lasts ``T_i = first_period * period_mult**i`` steps and starts at
    ``S_i = first_period * (1 + period_mult + ... + period_mult**(i-1))``; within it

        value_k = end + (init - end) * peak_decay**i * (1 + cos(pi * (k - S_i) / T_i)) / 2

    Matches torch ``CosineAnnealingWarmRestarts(T_0=first_period, T_mult,
    eta_min=end_value)`` (integer ``T_mult``, ``peak_decay=1``) and Keras
    ``CosineDecayRestarts(init_value, first_period, t_mul=period_mult,
    m_mul=peak_decay, alpha)`` with ``end_value = alpha * init_value``.

    Args:
      init_value: the value at the start of the first period.
      first_period: ``T_0`` > 0 steps.
      end_value: the floor each period anneals to.
      period_mult: each period is this many times longer than the one before
        (>= 1); keyword only.
      peak_decay: each restart's peak (above ``end_value``) is this many times
        the one before; keyword only.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.cosine_with_restarts(0.1, 1000, period_mult=2.0)
      >>> [round(float(sched(k)), 4) for k in (0, 999, 1000, 2000)]  # periods 1000, 2000, ...
      [0.1, 0.0, 0.1, 0.05]

    References:
      Loshchilov and Hutter, SGDR: Stochastic Gradient Descent with Warm
      Restarts, 2017, arXiv:1608.03983.
    """
    where = "gradopt.schedules.cosine_with_restarts"
    check_scalar(where, "init_value", init_value)
    check_positive(where, "first_period", first_period, fix=STEPS_FIX)
    check_scalar(where, "end_value", end_value)
    check_scalar(
        where, "period_mult", period_mult, low=1.0, fix="Use 1.0 for periods of equal length."
    )
    check_nonnegative(where, "peak_decay", peak_decay, fix="Use 1.0 to restart at init_value.")
    return Bound(
        _cosine_with_restarts,
        init_value=init_value,
        first_period=first_period,
        end_value=end_value,
        period_mult=period_mult,
        peak_decay=peak_decay,
    )


def _warmup(count, *, schedule, warmup_steps, init_value):
    k = as_float(count)
    steps = as_float(warmup_steps)
    if callable(schedule):
        target = as_float(schedule(jnp.zeros([], jnp.int32)))
        after = as_float(schedule(shift_steps(count, warmup_steps)))
    else:
        target = after = as_float(schedule)
    init = as_float(init_value)
    ramp = init + (target - init) * (k / jnp.maximum(steps, 1.0))
    return jnp.where(k < steps, ramp, after)


def warmup(schedule, warmup_steps, *, init_value=0.0) -> Bound:
    """Linear warm-up from ``init_value`` into ``schedule`` (a schedule or a number).

        value_k = init + (schedule(0) - init) * k / W     for k < W
        value_k = schedule(k - W)                         for k >= W

    with ``W = warmup_steps``. The schedule after the warm-up starts at its own
    step 0. Keras ``CosineDecay(init, T, alpha, warmup_target=peak,
    warmup_steps=W)`` is ``warmup(cosine(peak, T, alpha * peak), W,
    init_value=init)``; torch ``LinearLR(start_factor=s, total_iters=W)`` on a
    base rate ``lr`` is ``warmup(lr, W, init_value=s * lr)``, and the common
    torch ``SequentialLR([LinearLR(s, 1.0, W), other], milestones=[W])`` is
    ``warmup(other_schedule, W, init_value=s * lr)``.

    Args:
      schedule: the schedule to warm up into, or a number to hold after it.
      warmup_steps: ``W`` >= 0 (an integer number of steps).
      init_value: the value at step 0; keyword only.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.warmup(schedules.cosine(1e-3, 10_000), 500)
      >>> [round(float(sched(k)), 6) for k in (0, 250, 500)]
      [0.0, 0.0005, 0.001]

    References:
      Goyal et al., Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour,
      2017, arXiv:1706.02677.
    """
    where = "gradopt.schedules.warmup"
    if not callable(schedule):
        check_scalar(where, "schedule", schedule)
    check_nonnegative(where, "warmup_steps", warmup_steps, fix="Use 0 for no warm-up.")
    check_scalar(where, "init_value", init_value)
    return Bound(_warmup, schedule=schedule, warmup_steps=warmup_steps, init_value=init_value)


def _anneal(start, end, fraction, anneal):
    if anneal == "cos":
        return end + (start - end) * _half_cosine(fraction)
    return start + (end - start) * fraction


def _onecycle(
    count, *, max_value, total_steps, pct_start, div_factor, final_div_factor, anneal, three_phase
):
    total = as_float(total_steps)
    k = jnp.minimum(as_float(count), total - 1.0)
    peak = as_float(max_value)
    initial = peak / as_float(div_factor)
    final = initial / as_float(final_div_factor)
    rise_end = as_float(pct_start) * total - 1.0
    if three_phase:
        phases = [
            (rise_end, initial, peak),
            (2.0 * rise_end, peak, initial),
            (total - 1.0, initial, final),
        ]
    else:
        phases = [(rise_end, initial, peak), (total - 1.0, peak, final)]
    value = None
    starts = [jnp.zeros_like(total)] + [end for end, _, _ in phases[:-1]]
    for (end_step, lo, hi), start_step in reversed(list(zip(phases, starts, strict=True))):
        # A phase of zero length (pct_start * total_steps == 1) has reached its end.
        length = end_step - start_step
        fraction = (k - start_step) / jnp.where(length > 0, length, 1.0)
        fraction = jnp.where(length > 0, fraction, 1.0)
        phase_value = _anneal(lo, hi, fraction, anneal)
        value = phase_value if value is None else jnp.where(k <= end_step, phase_value, value)
    return value


def onecycle(
    max_value,
    total_steps,
    *,
    pct_start=0.3,
    div_factor=25.0,
    final_div_factor=1e4,
    anneal="cos",
    three_phase=False,
) -> Bound:
    """The one-cycle policy: up from ``max_value / div_factor`` to ``max_value``, then down.

    With ``initial = max_value / div_factor``, ``final = initial /
    final_div_factor`` and ``e = pct_start * total_steps - 1``, the phases are
    ``initial -> max_value`` over steps ``[0, e]`` and ``max_value -> final``
    over ``[e, total_steps - 1]``; with ``three_phase=True``: ``initial ->
    max_value`` over ``[0, e]``, ``max_value -> initial`` over ``[e, 2e]`` and
    ``initial -> final`` over ``[2e, total_steps - 1]``. Within a phase from
    step ``a`` to ``b`` and ``f = (k - a) / (b - a)``:

        cos:    value = end + (start - end) * (1 + cos(pi f)) / 2
        linear: value = start + (end - start) * f

    Matches the learning rate of torch ``OneCycleLR(max_lr=max_value,
    total_steps, pct_start, anneal_strategy, div_factor, final_div_factor,
    three_phase)`` (momentum cycling is not part of a learning-rate schedule).

    Note:
      torch raises after ``total_steps`` steps; this schedule holds ``final``
      from step ``total_steps - 1`` on. When ``pct_start * total_steps == 1``
      the rise has no length (torch divides 0 by 0): the phase counts as
      finished, so step 0 gives ``max_value``.

    Args:
      max_value: the peak value.
      total_steps: the length of the cycle, > 0.
      pct_start: the fraction of the cycle spent rising, in [0, 1].
      div_factor: ``initial = max_value / div_factor``.
      final_div_factor: ``final = initial / final_div_factor``.
      anneal: ``"cos"`` or ``"linear"``.
      three_phase: use the three-phase variant.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.onecycle(0.1, total_steps=10_000)
      >>> [round(float(sched(k)), 4) for k in (0, 3_000, 10_000)]  # up for 30%, then down
      [0.004, 0.1, 0.0]

    References:
      Smith and Topin, Super-Convergence: Very Fast Training of Neural Networks
      Using Large Learning Rates, 2017, arXiv:1708.07120.
    """
    where = "gradopt.schedules.onecycle"
    check_scalar(where, "max_value", max_value)
    check_positive(where, "total_steps", total_steps, fix=STEPS_FIX)
    check_scalar(
        where, "pct_start", pct_start, low=0.0, high=1.0, fix="It is a fraction of total_steps."
    )
    check_positive(where, "div_factor", div_factor, fix="torch uses 25.0.")
    check_positive(where, "final_div_factor", final_div_factor, fix="torch uses 1e4.")
    check_choice(where, "anneal", anneal, ("cos", "linear"))
    check_flag(where, "three_phase", three_phase)
    return Bound(
        _onecycle,
        max_value=max_value,
        total_steps=total_steps,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        anneal=anneal,
        three_phase=three_phase,
    )
