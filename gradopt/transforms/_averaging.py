"""Averaged parameters (Polyak averaging): an exponential or a uniform average of the iterates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, call_update, transform
from gradopt.core._checks import check_scalar
from gradopt.core._numerics import compute_dtype, increment, zero_count

_WHERE = "gradopt.average_parameters"


class AverageParametersState(NamedTuple):
    """State of :func:`average_parameters`.

    Attributes:
      inner_state: the wrapped optimizer's state.
      average: the averaged parameters, in each leaf's compute dtype (float32
        for bfloat16 and float16 parameters); the initial parameters until the
        first averaged step. Read it with :func:`averaged_params`.
      count: the wrapper's steps so far (int32, saturating).
      n_averaged: the number of iterates in the average (int32, saturating).
    """

    inner_state: Any
    average: Any
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count
    n_averaged: jax.Array


def _init(params, *, inner, decay, start, every, overwrite_every):
    del decay, start, every, overwrite_every
    average = jax.tree.map(
        lambda p: jnp.asarray(p).astype(compute_dtype(jnp.result_type(p))), params
    )
    return AverageParametersState(inner.init(params), average, zero_count(), zero_count())


def _decay_at(decay, count):
    return decay(count) if callable(decay) else decay


def _update(updates, state, params=None, *, inner, decay, start, every, overwrite_every, **extra):
    if params is None:
        raise ValueError(
            f"{_WHERE}: update needs the parameters (the average is of the parameters): call "
            "tx.update(grads, state, params)."
        )
    updates, inner_state = call_update(inner, updates, state.inner_state, params, extra)
    count = state.count
    take = jnp.logical_and(count >= start, (count - start) % every == 0)
    first = state.n_averaged == 0
    n = state.n_averaged

    def average_leaf(avg, p, u):
        new = jnp.asarray(p).astype(avg.dtype) + jnp.asarray(u).astype(avg.dtype)
        new = new.astype(jnp.result_type(p)).astype(avg.dtype)  # the parameter as stored
        if decay is None:
            weight = 1.0 / (n.astype(avg.dtype) + 1)
        else:
            d = jnp.asarray(_decay_at(decay, count)).astype(avg.dtype)
            weight = 1 - d
        weight = jnp.where(first, jnp.ones([], avg.dtype), weight)
        return jnp.where(take, avg + weight * (new - avg), avg)

    average = jax.tree.map(average_leaf, state.average, params, updates)
    n_averaged = jnp.where(take, increment(n), n)
    if overwrite_every is not None:
        overwrite = jnp.logical_and((count + 1) % overwrite_every == 0, n_averaged > 0)
        updates = jax.tree.map(
            lambda u, avg, p: jnp.where(
                overwrite, (avg - jnp.asarray(p).astype(avg.dtype)).astype(u.dtype), u
            ),
            updates,
            average,
            params,
        )
    return updates, AverageParametersState(inner_state, average, increment(count), n_averaged)


def average_parameters(
    inner,
    *,
    decay: Any = None,
    start: int = 0,
    every: int = 1,
    overwrite_every: int | None = None,
) -> GradientTransformation:
    """Keep an average of the parameters that ``inner`` produces (Polyak averaging).

    After each step of ``inner`` the new parameters ``w_t = w_{t-1} + u_t`` are
    folded into the average ``a`` (read it with :func:`averaged_params`), the
    first averaged iterate being copied::

        a = w_t                                    (the first averaged step)
        a = a + (1 - decay) * (w_t - a)            (exponential, decay given)
        a = a + (w_t - a) / (n + 1)                (uniform, decay=None; n iterates so far)

    A step is averaged when its index ``k`` (0 for the first call) satisfies
    ``k >= start`` and ``(k - start) % every == 0``: stochastic weight averaging
    (SWA) takes the uniform average from ``start`` on, every ``every`` steps.
    The updates of ``inner`` pass through unchanged, so its trajectory is the
    same as without the wrapper, unless ``overwrite_every`` is set: then at every
    ``overwrite_every``-th call the update moves the parameters onto the average
    (Keras' ``ema_overwrite_frequency``).

    Args:
      inner: the optimizer whose iterates are averaged.
      decay: None for the uniform average, or the decay of the exponential one,
        a number in [0, 1] or a schedule ``count -> decay``. Keyword only.
      start: the first step averaged, an int >= 0. Keyword only.
      every: average one step in ``every``, an int >= 1. Keyword only.
      overwrite_every: None, or an int >= 1. Keyword only.

    Returns:
      A gradient transformation whose ``update`` needs ``params``; state
      :class:`AverageParametersState`.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> tx = gradopt.average_parameters(gradopt.sgd(0.5))  # the uniform average
      >>> params = {"w": jnp.array([0.0])}
      >>> state = tx.init(params)
      >>> for g in (-2.0, -2.0):
      ...     updates, state = tx.update({"w": jnp.array([g])}, state, params)
      ...     params = gradopt.apply_updates(params, updates)
      >>> params["w"], gradopt.averaged_params(state)["w"]  # iterates 1 and 2, average 1.5
      (Array([2.], dtype=float32), Array([1.5], dtype=float32))

    References:
      Polyak and Juditsky, Acceleration of stochastic approximation by averaging,
      SIAM J. Control Optim., 1992. Izmailov et al., Averaging Weights Leads to
      Wider Optima and Better Generalization, UAI 2018, arXiv:1803.05407.

    Note:
      Keras' ``use_ema`` is ``decay=ema_momentum`` (Keras writes
      ``momentum * a + (1 - momentum) * w``: the same average, rounded
      differently); PyTorch's ``AveragedModel`` is this wrapper with the average
      taken when ``update_parameters`` would be called (see
      :mod:`gradopt.compat.swa_utils`).
    """
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            f"{_WHERE}: inner is {inner!r}, which is not a gradient transformation. Pass an "
            "optimizer such as gradopt.sgd(0.1)."
        )
    if decay is not None and not callable(decay):
        check_scalar(
            _WHERE,
            "decay",
            decay,
            low=0.0,
            high=1.0,
            fix="Use a decay in [0, 1] such as 0.999 (1 keeps the first averaged iterate).",
        )
    for name, value, low in (("start", start, 0), ("every", every, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{_WHERE}: {name} must be an int >= {low}, got {value!r}.")
    if overwrite_every is not None and (
        isinstance(overwrite_every, bool)
        or not isinstance(overwrite_every, int)
        or overwrite_every < 1
    ):
        raise ValueError(
            f"{_WHERE}: overwrite_every must be None or an int >= 1, got {overwrite_every!r}."
        )
    return transform(
        _init,
        _update,
        inner=inner,
        decay=decay,
        start=start,
        every=every,
        overwrite_every=overwrite_every,
    )


def _find(state) -> list[AverageParametersState]:
    if isinstance(state, AverageParametersState):
        return [state]
    if isinstance(state, Mapping):
        children = list(state.values())
    elif isinstance(state, (tuple, list)):
        children = list(state)
    else:
        return []
    return [found for child in children for found in _find(child)]


def averaged_params(state):
    """The averaged parameters held by the :func:`average_parameters` wrapper in ``state``.

    Looks through nested optimizer states (tuples, dicts, NamedTuples) for one
    :class:`AverageParametersState` (outermost first) and returns its average,
    in each leaf's compute dtype; cast to the parameters' dtypes to evaluate in
    low precision. Traceable.
    """
    found = _find(state)
    if not found:
        raise ValueError(
            "gradopt.averaged_params: the state holds no average; build the optimizer with "
            "gradopt.average_parameters(optimizer, ...) and pass its state."
        )
    return found[0].average
