"""Dynamic loss scaling for float16 training: unscale, skip non-finite steps, adapt the scale."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, call_update, transform
from gradopt.core._checks import check_flag, check_scalar
from gradopt.core._numerics import as_compute, div_real, increment, zero_count
from gradopt.transforms._guards import all_finite

_WHERE = "gradopt.loss_scaling"


class LossScaleState(NamedTuple):
    """State of :func:`loss_scaling`.

    Attributes:
      inner_state: the wrapped optimizer's state (untouched by skipped steps).
      scale: the current loss scale (float32). Multiply the loss by it with
        :func:`scale_loss`.
      good_steps: finite steps since the scale last changed (int32).
    """

    inner_state: Any
    scale: jax.Array
    good_steps: jax.Array


def _init(params, *, inner, initial_scale, growth_interval, growth_factor, backoff_factor, dynamic):
    del growth_interval, growth_factor, backoff_factor, dynamic
    return LossScaleState(inner.init(params), jnp.asarray(initial_scale, jnp.float32), zero_count())


def _update(
    updates,
    state,
    params=None,
    *,
    inner,
    initial_scale,
    growth_interval,
    growth_factor,
    backoff_factor,
    dynamic,
    **extra,
):
    del initial_scale
    finite = all_finite(updates)
    scale = state.scale
    unscaled = jax.tree.map(lambda g: div_real(as_compute(g), scale).astype(g.dtype), updates)
    new_updates, new_inner = call_update(inner, unscaled, state.inner_state, params, extra)
    zeros = jax.tree.map(jnp.zeros_like, new_updates)
    out = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new_updates, zeros)
    inner_state = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new_inner, state.inner_state)
    if not dynamic:
        return out, LossScaleState(inner_state, scale, state.good_steps)
    grow = jnp.logical_and(finite, state.good_steps >= growth_interval - 1)
    new_scale = jnp.where(
        finite,
        jnp.where(grow, scale * growth_factor, scale),
        scale * backoff_factor,
    ).astype(jnp.float32)
    good = jnp.where(jnp.logical_and(finite, jnp.logical_not(grow)), increment(state.good_steps), 0)
    return out, LossScaleState(inner_state, new_scale, good.astype(jnp.int32))


def loss_scaling(
    inner,
    *,
    initial_scale: float = 2.0**15,
    growth_interval: int = 2000,
    growth_factor: float = 2.0,
    backoff_factor: float = 0.5,
    dynamic: bool = True,
) -> GradientTransformation:
    """Train with a scaled loss: unscale the gradients, skip overflows, adapt the scale.

    In float16 small gradients underflow to zero. The loss is multiplied by a
    large scale ``S`` before differentiating (:func:`scale_loss` inside the
    function given to ``jax.grad``), so the gradients arrive multiplied by
    ``S``; this wrapper divides them by ``S`` and hands them to ``inner``::

        finite step:  u = inner(g / S)
                      S = S * growth_factor after growth_interval finite steps in a row
        otherwise:    u = 0, inner's state kept, S = S * backoff_factor

    (Micikevicius et al.'s dynamic loss scaling; with ``dynamic=False`` the scale
    stays ``initial_scale``, non-finite steps are still skipped.) Works around
    any transform; the selection is done with ``jnp.where``, one compiled
    program for every case.

    Args:
      inner: the optimizer to feed the unscaled gradients.
      initial_scale: the first scale, > 0. Keyword only, like the rest.
      growth_interval: finite steps in a row before the scale grows, an int >= 1.
      growth_factor: > 1. backoff_factor: in (0, 1).
      dynamic: adapt the scale (True) or keep it fixed.

    Returns:
      A gradient transformation whose state is :class:`LossScaleState`.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> tx = gradopt.loss_scaling(gradopt.sgd(0.1), initial_scale=1024.0)
      >>> params = {"w": jnp.array([1.0], jnp.float16)}
      >>> state = tx.init(params)
      >>> def loss(p, state):
      ...     return gradopt.scale_loss(jnp.sum(p["w"].astype(jnp.float32) ** 2), state)
      >>> grads = jax.grad(loss)(params, state)  # 1024 * 2 w
      >>> updates, state = tx.update(grads, state, params)
      >>> updates["w"]  # -0.1 * 2 w
      Array([-0.2], dtype=float16)

    References:
      Micikevicius et al., Mixed Precision Training, ICLR 2018, arXiv:1710.03740.

    Note:
      Keras' ``LossScaleOptimizer`` is this wrapper with ``growth_interval =
      dynamic_growth_steps`` (see :func:`gradopt.compat.keras.loss_scale_optimizer`);
      PyTorch's ``GradScaler`` also checks the gradients after unscaling and
      keeps the optimizer out of the loop; the result is the same.
    """
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            f"{_WHERE}: inner is {inner!r}, which is not a gradient transformation. Pass an "
            "optimizer such as gradopt.adam(1e-3)."
        )
    check_scalar(_WHERE, "initial_scale", initial_scale, low=0.0, low_open=True, fix="Use 2.0**15.")
    if (
        isinstance(growth_interval, bool)
        or not isinstance(growth_interval, int)
        or growth_interval < 1
    ):
        raise ValueError(f"{_WHERE}: growth_interval must be an int >= 1, got {growth_interval!r}.")
    check_scalar(_WHERE, "growth_factor", growth_factor, low=1.0, low_open=True, fix="Use 2.0.")
    check_scalar(
        _WHERE,
        "backoff_factor",
        backoff_factor,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        fix="Use 0.5.",
    )
    check_flag(_WHERE, "dynamic", dynamic)
    return transform(
        _init,
        _update,
        inner=inner,
        initial_scale=initial_scale,
        growth_interval=growth_interval,
        growth_factor=growth_factor,
        backoff_factor=backoff_factor,
        dynamic=dynamic,
    )


def _find(state) -> list[LossScaleState]:
    if isinstance(state, LossScaleState):
        return [state]
    if isinstance(state, Mapping):
        children = list(state.values())
    elif isinstance(state, (tuple, list)):
        children = list(state)
    else:
        return []
    return [found for child in children for found in _find(child)]


def scale_loss(loss, state):
    """``loss * S``, with ``S`` the scale of the :func:`loss_scaling` wrapper in ``state``.

    Call it on the loss inside the function you differentiate; the gradients then
    come out multiplied by ``S``, which the wrapper divides out. Traceable; the
    result has the loss's dtype (compute the loss in float32 when it may exceed
    float16's range).
    """
    found = _find(state)
    if not found:
        raise ValueError(
            "gradopt.scale_loss: the state holds no loss scale; build the optimizer with "
            "gradopt.loss_scaling(optimizer) and pass its state."
        )
    loss = jnp.asarray(loss)
    return loss * found[0].scale.astype(loss.dtype)
