"""Scaling by a constant and by a learning rate (a number, a traced scalar or a schedule)."""

from __future__ import annotations

from typing import NamedTuple

import jax

from gradopt.core._base import EmptyState, GradientTransformation
from gradopt.core._checks import check_flag, check_learning_rate, check_scalar
from gradopt.core._elementwise import Elementwise, elementwise, no_step
from gradopt.core._numerics import as_compute, hyper, increment, zero_count


def scale_tree(updates, factor):
    """Multiply every leaf by ``factor`` in its compute dtype, keeping the leaf's dtype."""

    def mul(u):
        c = as_compute(u)
        return (c * hyper(factor, c)).astype(u.dtype)

    return jax.tree.map(mul, updates)


def _scale_init(params, *, factor):
    del params, factor
    return EmptyState()


def _scale_leaf(x, fields, ctx, p, *, factor):
    del fields, ctx, p
    return x * hyper(factor, x), {}


_SCALE = Elementwise("gradopt.scale", _scale_init, no_step, _scale_leaf)


def scale(factor) -> GradientTransformation:
    """Multiply the updates by a constant ``factor`` (a number or a scalar array)."""
    check_scalar("gradopt.scale", "factor", factor)
    return elementwise(_SCALE, factor=factor)


class ScaleByScheduleState(NamedTuple):
    """State of :func:`scale_by_learning_rate`: the number of updates seen."""

    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _lr_init(params, *, learning_rate, flip_sign):
    del params, learning_rate, flip_sign
    return ScaleByScheduleState(count=zero_count())


def _lr_step(state, *, learning_rate, flip_sign):
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    return (-lr if flip_sign else lr), {"count": increment(state.count)}


def _lr_leaf(x, fields, ctx, p, *, learning_rate, flip_sign):
    del fields, p, learning_rate, flip_sign
    return x * hyper(ctx, x), {}


_LR = Elementwise("gradopt.scale_by_learning_rate", _lr_init, _lr_step, _lr_leaf)


def scale_by_learning_rate(learning_rate, *, flip_sign: bool = True) -> GradientTransformation:
    """Multiply the updates by ``-learning_rate`` (or ``+`` with ``flip_sign=False``).

    The state counts the updates whether or not the learning rate is a
    schedule, so that its structure depends on the configuration's shape only
    (a number, a traced scalar and a schedule give the same state).

    Args:
      learning_rate: a non-negative number, a scalar array (traced values are
        accepted, so a sweep can be vmapped), or a schedule ``step -> value``;
        a schedule is evaluated at the count of previous updates (0 first).
      flip_sign: multiply by ``-learning_rate`` so that adding the updates
        descends. Keyword only.

    Returns:
      A gradient transformation with state :class:`ScaleByScheduleState`.
    """
    check_learning_rate("gradopt.scale_by_learning_rate", learning_rate)
    check_flag("gradopt.scale_by_learning_rate", "flip_sign", flip_sign)
    return elementwise(_LR, learning_rate=learning_rate, flip_sign=flip_sign)
