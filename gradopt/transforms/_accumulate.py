"""Gradient accumulation: one optimizer step every k mini-batches."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, call_update, transform, tree_map
from gradopt.core._checks import check_choice
from gradopt.core._numerics import as_compute, compute_dtype, full_like, increment, zero_count

_WHERE = "gradopt.accumulate"


class AccumulateState(NamedTuple):
    """State of :func:`accumulate`.

    Attributes:
      mini_step: calls since the last inner step, in ``[0, every_k)`` (int32).
      count: inner steps taken so far (int32, saturating).
      acc: the running sum of the updates since the last inner step, in each
        leaf's compute dtype (float32 for bfloat16 leaves).
      inner_state: the wrapped optimizer's state; it only changes on inner steps.
    """

    mini_step: jax.Array
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count
    acc: Any
    inner_state: Any


def _acc_init(params, *, inner, every_k, reduction):
    del every_k, reduction
    acc = jax.tree.map(lambda p: full_like(p, 0, compute_dtype(jnp.result_type(p))), params)
    return AccumulateState(zero_count(), zero_count(), acc, inner.init(params))


def _acc_update(updates, state, params=None, *, inner, every_k, reduction, **extra):
    acc = tree_map(
        lambda a, u: a + as_compute(u).astype(a.dtype),
        state.acc,
        updates,
        what="accumulator",
        rest_what="updates",
    )
    emit = state.mini_step == every_k - 1

    def step(operands):
        acc, inner_state = operands
        grads = jax.tree.map(
            lambda a, u: (a / every_k if reduction == "mean" else a).astype(u.dtype), acc, updates
        )
        out, inner_state = call_update(inner, grads, inner_state, params, extra)
        return out, inner_state

    out_shapes = jax.eval_shape(step, (acc, state.inner_state))[0]

    def wait(operands):
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_shapes)
        return zeros, operands[1]

    out, inner_state = jax.lax.cond(emit, step, wait, (acc, state.inner_state))
    acc = jax.tree.map(lambda a: jnp.where(emit, jnp.zeros_like(a), a), acc)
    mini_step = jnp.where(emit, zero_count(), state.mini_step + 1).astype(jnp.int32)
    count = jnp.where(emit, increment(state.count), state.count)
    return out, AccumulateState(mini_step, count, acc, inner_state)


def accumulate(inner, every_k: int, *, reduction: str = "mean") -> GradientTransformation:
    """Accumulate gradients over ``every_k`` calls, then take one step of ``inner``.

    Calls ``1 .. k-1`` of every cycle add the incoming updates to a running
    sum and return zero updates; call ``k`` hands the wrapped optimizer::

        g = (1/k) * sum_{j=1..k} g_j     (reduction="mean", the default)
        g =         sum_{j=1..k} g_j     (reduction="sum")

    then resets the sum. The wrapped optimizer's state (its step count, its
    moments) advances only on those k-th calls. With ``k`` mini-batches of
    equal size and ``g_j`` the mean gradient of mini-batch ``j``, the mean
    reduction gives exactly the mean gradient of their union: k accumulated
    mini-batch steps reproduce one full-batch step (the memory-for-time trade
    of the lecture's "memory footprint" example), for any optimizer. Use
    ``"sum"`` when each ``g_j`` is already a sum over its examples.

    The sum is kept in each leaf's compute dtype (float32 for bfloat16
    gradients). The branch is chosen with ``jax.lax.cond``: one compiled
    program, and the inner update only runs on emitting calls (under ``vmap``
    both branches run).

    Args:
      inner: the optimizer to step every ``every_k`` calls.
      every_k: the number of mini-batches per step, a positive int (1 leaves
        ``inner`` unchanged).
      reduction: ``"mean"`` or ``"sum"``, see above. Keyword only.

    Returns:
      A ``GradientTransformation`` whose state is :class:`AccumulateState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> tx = gradopt.accumulate(gradopt.sgd(0.1), every_k=2)  # one step per 2 mini-batches
      >>> params = {"w": jnp.zeros(2)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([1.0, 2.0])}, state, params)
      >>> updates["w"]  # waiting: no step yet
      Array([0., 0.], dtype=float32)
      >>> updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, state, params)
      >>> updates["w"]  # -0.1 * the mean of the two gradients
      Array([-0.2, -0.3], dtype=float32)
    """
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            f"{_WHERE}: inner is {inner!r}, which is not a gradient transformation. Pass an "
            "optimizer such as gradopt.adam(1e-3)."
        )
    if isinstance(every_k, bool) or not isinstance(every_k, int) or every_k < 1:
        raise ValueError(
            f"{_WHERE}: every_k must be a positive int (the number of mini-batches per step), "
            f"got {every_k!r}."
        )
    check_choice(_WHERE, "reduction", reduction, ("mean", "sum"))
    return transform(_acc_init, _acc_update, inner=inner, every_k=every_k, reduction=reduction)
