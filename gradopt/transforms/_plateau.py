"""Reduce the step size when a monitored value stops improving."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, transform
from gradopt.core._checks import check_choice, check_scalar
from gradopt.core._numerics import hyper, increment, zero_count
from gradopt.schedules._common import float_dtype
from gradopt.transforms._scale import scale_tree

_WHERE = "gradopt.reduce_on_plateau"


class ReduceOnPlateauState(NamedTuple):
    """State of :func:`reduce_on_plateau`.

    Attributes:
      scale: the factor the updates are multiplied by (1 at first).
      best: the best monitored value so far (+inf in min mode, -inf in max mode at first).
      num_bad: consecutive evaluations without improvement (int32).
      cooldown_count: evaluations left in the cooldown after a reduction (int32).
    """

    scale: jax.Array
    best: jax.Array
    num_bad: jax.Array
    cooldown_count: jax.Array


def _plateau_init(params, *, mode, **hyperparameters):
    del params, hyperparameters
    dtype = float_dtype()
    best = jnp.inf if mode == "min" else -jnp.inf
    return ReduceOnPlateauState(
        scale=jnp.ones([], dtype),
        best=jnp.asarray(best, dtype),
        num_bad=zero_count(),
        cooldown_count=zero_count(),
    )


def _is_improvement(value, best, *, mode, threshold, threshold_mode):
    """``value`` beats ``best`` by more than the threshold (never when it is unchanged)."""
    margin = hyper(threshold, best)
    if threshold_mode == "rel":
        margin = margin * jnp.abs(best)
    finite = jnp.isfinite(best)
    if mode == "min":
        return value < jnp.where(finite, best - margin, best)
    return value > jnp.where(finite, best + margin, best)


def _plateau_update(
    updates,
    state,
    params=None,
    *,
    factor,
    patience,
    mode,
    threshold,
    threshold_mode,
    cooldown,
    min_scale,
    value=None,
    **extra,
):
    del params, extra
    if value is None:
        raise TypeError(
            f"{_WHERE}: update needs the monitored value. Call "
            "update(updates, state, params, value=loss); inside gradopt.chain pass value= to the "
            "chain's update and it reaches this stage."
        )
    value = jnp.asarray(value)
    if value.shape != ():
        raise ValueError(
            f"{_WHERE}: value must be a scalar, got shape {value.shape}. Pass the mean loss or "
            "metric, e.g. value=jnp.mean(losses)."
        )
    value = value.astype(state.best.dtype)
    improved = _is_improvement(
        value, state.best, mode=mode, threshold=threshold, threshold_mode=threshold_mode
    )
    best = jnp.where(improved, value, state.best)
    num_bad = jnp.where(improved, zero_count(), increment(state.num_bad))
    in_cooldown = state.cooldown_count > 0
    cooldown_count = jnp.where(in_cooldown, state.cooldown_count - 1, state.cooldown_count)
    num_bad = jnp.where(in_cooldown, zero_count(), num_bad)
    reduce = num_bad > hyper(patience, num_bad)
    reduced = jnp.maximum(state.scale * hyper(factor, state.scale), hyper(min_scale, state.scale))
    scale = jnp.where(reduce, reduced, state.scale)
    cooldown_count = jnp.where(reduce, hyper(cooldown, cooldown_count), cooldown_count)
    num_bad = jnp.where(reduce, zero_count(), num_bad)
    new_state = ReduceOnPlateauState(
        scale=scale.astype(state.scale.dtype),
        best=best,
        num_bad=num_bad.astype(jnp.int32),
        cooldown_count=cooldown_count.astype(jnp.int32),
    )
    return scale_tree(updates, new_state.scale), new_state


def reduce_on_plateau(
    factor=0.1,
    patience=10,
    *,
    mode="min",
    threshold=1e-4,
    threshold_mode="rel",
    cooldown=0,
    min_scale=0.0,
) -> GradientTransformation:
    """Multiply the updates by a scale that shrinks when a monitored value plateaus.

    ``update(updates, state, params, value=v)`` is told the monitored value
    ``v`` (a loss, or a metric with ``mode="max"``). In min mode, ``v`` is an
    improvement when

        rel:  v < best - threshold * |best|
        abs:  v < best - threshold

    (in max mode: ``v > best + threshold * |best|`` or ``v > best + threshold``).
    An improvement sets ``best = v`` and clears the count of bad evaluations;
    otherwise the count grows by one. While in cooldown the count is held at 0
    (and the cooldown counter falls by one). When the count exceeds
    ``patience``, the scale becomes ``max(scale * factor, min_scale)``, the
    count is cleared and a cooldown of ``cooldown`` evaluations starts. The
    updates of this call are multiplied by the scale after ``v`` is taken into
    account, so with ``v`` the loss at the current parameters this is the
    usual "evaluate, then step the scheduler, then train" loop.

    This is torch ``ReduceLROnPlateau(optimizer, mode, factor, patience,
    threshold, threshold_mode, cooldown, min_lr)`` step for step on positive
    metrics, with ``min_scale = min_lr / lr``. Keras'
    ``ReduceLROnPlateau(factor, patience=p, min_delta=d, cooldown=c, min_lr)``
    counts differently; it is ``reduce_on_plateau(factor, max(p - 1, 0),
    threshold=d, threshold_mode="abs", cooldown=max(c - 1, 0), min_scale=min_lr
    / lr)``.

    Note:
      An unchanged value is never an improvement, whatever the sign of
      ``best``. torch's relative mode compares ``v < best * (1 - threshold)``,
      which for a negative ``best`` accepts an unchanged (even a slightly worse)
      value as an improvement, so it never reduces on a plateau of negative
      values; optax's ``contrib.reduce_on_plateau`` never reduces while the
      metric is negative. gradopt uses
      ``best - threshold * |best|``, which equals torch's rule for positive
      values. A NaN value is never an improvement. torch's ``eps`` (skip
      reductions smaller than 1e-8 in absolute learning rate) has no
      counterpart: the scale does not know the learning rate.

    Args:
      factor: the scale is multiplied by this, in [0, 1).
      patience: bad evaluations tolerated before a reduction (>= 0).
      mode: ``"min"`` (a loss) or ``"max"`` (an accuracy); keyword only.
      threshold: the margin an improvement needs (>= 0).
      threshold_mode: ``"rel"`` (a fraction of ``|best|``) or ``"abs"``.
      cooldown: evaluations after a reduction during which bad ones are not
        counted (>= 0).
      min_scale: the scale never falls below this, in [0, 1].

    Returns:
      A gradient transformation whose state is a :class:`ReduceOnPlateauState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> tx = gradopt.chain(gradopt.sgd(0.1), gradopt.reduce_on_plateau(0.5, patience=1))
      >>> params = {"w": jnp.ones(2)}
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.ones(2)}
      >>> for loss in [1.0, 0.8, 0.9, 0.95]:  # no improvement twice: the scale halves
      ...     updates, state = tx.update(grads, state, params, value=jnp.float32(loss))
      >>> updates["w"]
      Array([-0.05, -0.05], dtype=float32)
    """
    check_scalar(_WHERE, "factor", factor, low=0.0, high=1.0, high_open=True, fix="Use e.g. 0.1.")
    check_scalar(_WHERE, "patience", patience, low=0.0, fix="Use a whole number such as 10.")
    check_choice(_WHERE, "mode", mode, ("min", "max"))
    check_scalar(_WHERE, "threshold", threshold, low=0.0, fix="Use 0.0 for no margin.")
    check_choice(_WHERE, "threshold_mode", threshold_mode, ("rel", "abs"))
    check_scalar(_WHERE, "cooldown", cooldown, low=0.0, fix="Use a whole number such as 0.")
    check_scalar(
        _WHERE, "min_scale", min_scale, low=0.0, high=1.0, fix="It is min_lr / learning_rate."
    )
    for name, count in (("patience", patience), ("cooldown", cooldown)):
        if isinstance(count, float) and not count.is_integer():
            raise ValueError(f"{_WHERE}: {name} must be a whole number, got {count!r}.")
    patience = int(patience) if isinstance(patience, float) else patience
    cooldown = int(cooldown) if isinstance(cooldown, float) else cooldown
    return transform(
        _plateau_init,
        _plateau_update,
        factor=factor,
        patience=patience,
        mode=mode,
        threshold=threshold,
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        min_scale=min_scale,
    )
