"""Scaling by a constant and by a learning rate (a number, a traced scalar or a schedule)."""

from __future__ import annotations

from typing import NamedTuple

import jax

from gradopt._base import (
    EmptyState,
    GradientTransformation,
    as_compute,
    hyper,
    increment,
    transform,
    zero_count,
)
from gradopt._checks import check_flag, check_learning_rate, check_scalar


def scale_tree(updates, factor):
    """Multiply every leaf by ``factor`` in its compute dtype, keeping the leaf's dtype."""

    def mul(u):
        c = as_compute(u)
        return (c * hyper(factor, c)).astype(u.dtype)

    return jax.tree.map(mul, updates)


def _scale_init(params, *, factor):
    del params, factor
    return EmptyState()


def _scale_update(updates, state, params=None, *, factor, **extra):
    del params, extra
    return scale_tree(updates, factor), state


def scale(factor) -> GradientTransformation:
    """Multiply the updates by a constant ``factor`` (a number or a scalar array)."""
    check_scalar("gradopt.scale", "factor", factor)
    return transform(_scale_init, _scale_update, factor=factor)


class ScaleByScheduleState(NamedTuple):
    """State of :func:`scale_by_learning_rate` with a schedule: the step count."""

    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _lr_init(params, *, learning_rate, flip_sign):
    del params, flip_sign
    if callable(learning_rate):
        return ScaleByScheduleState(count=zero_count())
    return EmptyState()


def _lr_update(updates, state, params=None, *, learning_rate, flip_sign, **extra):
    del params, extra
    if callable(learning_rate):
        lr = learning_rate(state.count)
        state = ScaleByScheduleState(increment(state.count))
    else:
        lr = learning_rate
    return scale_tree(updates, -lr if flip_sign else lr), state


def scale_by_learning_rate(learning_rate, *, flip_sign: bool = True) -> GradientTransformation:
    """Multiply the updates by ``-learning_rate`` (or ``+`` with ``flip_sign=False``).

    Args:
      learning_rate: a non-negative number, a scalar array (traced values are
        accepted, so a sweep can be vmapped), or a schedule ``step -> value``;
        a schedule is evaluated at the count of previous updates (0 first).
      flip_sign: multiply by ``-learning_rate`` so that adding the updates
        descends. Keyword only.
    """
    check_learning_rate("gradopt.scale_by_learning_rate", learning_rate)
    check_flag("gradopt.scale_by_learning_rate", "flip_sign", flip_sign)
    return transform(_lr_init, _lr_update, learning_rate=learning_rate, flip_sign=flip_sign)
