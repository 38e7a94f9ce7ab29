"""Combining schedules: in sequence (:func:`join`), as a product (:func:`product`),
and wrapping any traceable Python callable (:func:`from_callable`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradopt.core._base import Bound
from gradopt.core._checks import check_scalar
from gradopt.schedules._common import as_float, check_boundaries, count_reached, shift_steps


def _value_at(schedule, count):
    return as_float(schedule(count)) if callable(schedule) else as_float(schedule)


def _check_schedules(where: str, schedules) -> tuple:
    schedules = tuple(schedules)
    for i, s in enumerate(schedules):
        if not callable(s):
            check_scalar(where, f"schedules[{i}]", s)
    return schedules


def _join(count, *, schedules, boundaries):
    index = count_reached(count, boundaries)
    starts = (0, *boundaries)
    values = jnp.stack(
        [
            jnp.broadcast_to(_value_at(s, shift_steps(count, b)), jnp.shape(count))
            for s, b in zip(schedules, starts, strict=True)
        ]
    )
    return jnp.take_along_axis(values, index[None], axis=0)[0]


def join(schedules, boundaries) -> Bound:
    """Schedules in sequence; each one counts its steps from its own boundary.

        value_k = schedules[i](k - boundaries[i - 1])   for boundaries[i - 1] <= k < boundaries[i]

    (with ``boundaries[-1] = 0`` for the first schedule). Matches torch
    ``SequentialLR(schedulers, milestones=boundaries)``, whose later schedulers
    restart from their own step 0 at their milestone.

    Args:
      schedules: schedules (or numbers, held constant), one more than boundaries.
      boundaries: strictly increasing steps at which the next schedule takes over.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.join(
      ...     [schedules.linear(0.0, 0.1, 100), schedules.cosine(0.1, 900)], boundaries=[100])
      >>> [round(float(sched(k)), 4) for k in (0, 50, 100, 550, 1000)]
      [0.0, 0.05, 0.1, 0.05, 0.0]
    """
    where = "gradopt.schedules.join"
    if isinstance(schedules, (str, bytes)) or not hasattr(schedules, "__iter__"):
        raise TypeError(f"{where}: schedules must be a list of schedules, got {schedules!r}.")
    schedules = _check_schedules(where, schedules)
    boundaries = check_boundaries(where, "boundaries", boundaries, strict=True)
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(
            f"{where}: pass one more schedule than boundaries, got {len(schedules)} schedules and "
            f"{len(boundaries)} boundaries. Schedule i runs from boundaries[i - 1] to "
            "boundaries[i]."
        )
    return Bound(_join, schedules=schedules, boundaries=boundaries)


def _product(count, *, schedules):
    value = jnp.ones(jnp.shape(count), as_float(0).dtype)
    for s in schedules:
        value = value * _value_at(s, count)
    return value


def product(*schedules) -> Bound:
    """The product of schedules (or numbers) at every step.

        value_k = schedules[0](k) * schedules[1](k) * ...

    torch's ``ChainedScheduler`` of multiplicative schedulers on a base rate
    ``lr`` is the product of ``lr`` and each scheduler's factor as a schedule:
    ``ChainedScheduler([ConstantLR(factor=f, total_iters=n), ExponentialLR(g)])``
    is ``product(lr, piecewise_constant([n], [f, 1.0]), exponential(1.0, g))``.

    Args:
      *schedules: schedules or numbers.

    Returns:
      A schedule ``step -> value``.

    Example:
      >>> from gradopt import schedules
      >>> sched = schedules.product(0.1, schedules.step(1.0, 30, 0.5))
      >>> [round(float(sched(k)), 4) for k in (0, 30, 60)]
      [0.1, 0.05, 0.025]
    """
    schedules = _check_schedules("gradopt.schedules.product", schedules)
    return Bound(_product, schedules=schedules)


def _from_callable(count, *, fn, kwargs):
    return as_float(fn(count, **kwargs))


def from_callable(fn: Callable[..., Any], /, **kwargs: Any) -> Bound:
    """A schedule from any Python callable ``fn(step, **kwargs) -> value``.

    ``fn`` must be traceable by JAX (use ``jnp`` functions and ``jnp.where``
    rather than Python ``if`` on the step) and return a scalar for a scalar
    step. Keyword arguments are passed on at every call, so they may be traced
    arrays (a sweep over them can be vmapped). Two schedules from the same
    function object and equal arguments compare equal.

    Args:
      fn: a callable ``fn(step, **kwargs)``; positional only.
      **kwargs: arguments passed to ``fn`` at every call.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError: ``fn`` is not callable or cannot be traced with an int32 step.
      ValueError: ``fn`` does not return a scalar.

    Example:
      >>> from gradopt import schedules
      >>> import jax.numpy as jnp
      >>> sched = schedules.from_callable(lambda k, lr: jnp.where(k < 10, lr, 0.1 * lr), lr=0.1)
      >>> [round(float(sched(k)), 4) for k in (0, 9, 10)]
      [0.1, 0.1, 0.01]
    """
    where = "gradopt.schedules.from_callable"
    if not callable(fn):
        raise TypeError(f"{where}: fn must be callable as fn(step, **kwargs), got {fn!r}.")
    schedule = Bound(_from_callable, fn=fn, kwargs=kwargs)
    try:
        out = jax.eval_shape(schedule, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as error:  # noqa: BLE001 - re-raised with the fix
        raise TypeError(
            f"{where}: calling fn on a traced int32 step failed with {type(error).__name__}: "
            f"{str(error).rstrip('.')}. Write fn with jax.numpy operations (jnp.where instead "
            "of Python `if` on the step) so it can be traced."
        ) from error
    if out.shape != ():
        raise ValueError(
            f"{where}: fn must return a scalar for a scalar step, got shape {out.shape}."
        )
    return schedule
