"""The L-BFGS preconditioner: the two-loop recursion (Nocedal, 1980) on the last m pairs.

See :func:`gradopt.lbfgs` for the rule; this primitive computes ``P_k g_k``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, transform
from gradopt.core._checks import check_flag
from gradopt.core._numerics import increment, zero_count
from gradopt.transforms._objective import require_params, tree_vdot


class ScaleByLbfgsState(NamedTuple):
    """State of :func:`scale_by_lbfgs`.

    Attributes:
      count: updates so far (int32, saturating).
      params, updates: the parameters and the gradient of the previous call.
      diff_params_memory: ``s_i = w_{i+1} - w_i``, stacked along a leading axis
        of length ``memory_size`` (a ring buffer).
      diff_updates_memory: ``y_i = g_{i+1} - g_i``, stacked alike.
      weights_memory: ``rho_i = 1 / <y_i, s_i>`` (0 where undefined).
    """

    count: jax.Array  # type: ignore[assignment]
    params: object
    updates: object
    diff_params_memory: object
    diff_updates_memory: object
    weights_memory: jax.Array


def _zeros(p):
    return jnp.zeros(jnp.shape(p), jnp.result_type(p))


def _lbfgs_init(params, *, memory_size, scale_init_precond):
    del scale_init_precond
    stacked = jax.tree.map(
        lambda p: jnp.zeros((memory_size, *jnp.shape(p)), jnp.result_type(p)), params
    )
    return ScaleByLbfgsState(
        count=zero_count(),
        params=jax.tree.map(_zeros, params),
        updates=jax.tree.map(_zeros, params),
        diff_params_memory=stacked,
        diff_updates_memory=stacked,
        weights_memory=jnp.zeros([memory_size], jnp.float32),
    )


def _two_loop(g, s_mem, y_mem, rho, gamma, newest):
    """``P g`` for the inverse-Hessian estimate built from the stored pairs.

    The first loop runs from the newest pair to the oldest (``alpha_i = rho_i
    <s_i, q>``, ``q -= alpha_i y_i``), the middle scales by ``gamma``, the
    second runs back (``beta = rho_i <y_i, r>``, ``r += (alpha_i - beta) s_i``).
    Empty slots have ``rho_i = 0`` and leave the vector unchanged.
    """
    m = rho.shape[0]
    order = (newest + jnp.arange(m, dtype=jnp.int32)) % m  # oldest ... newest

    def pair(i):
        return jax.tree.map(lambda x: x[i], s_mem), jax.tree.map(lambda x: x[i], y_mem)

    def backward(q, i):
        s, y = pair(i)
        v = tree_vdot(s, q)
        alpha = rho[i].astype(v.dtype) * v
        return jax.tree.map(
            lambda a, b: (a - alpha.astype(a.dtype) * b).astype(a.dtype), q, y
        ), alpha

    q, alphas = jax.lax.scan(backward, g, order, reverse=True)
    r = jax.tree.map(lambda x: gamma.astype(x.dtype) * x, q)

    def forward(r, i_alpha):
        i, alpha = i_alpha
        s, y = pair(i)
        v = tree_vdot(y, r)
        beta = rho[i].astype(v.dtype) * v
        return jax.tree.map(
            lambda a, b: (a + (alpha - beta).astype(a.dtype) * b).astype(a.dtype), r, s
        ), beta

    r, _ = jax.lax.scan(forward, r, (order, alphas))
    return r


def _lbfgs_update(updates, state, params=None, *, memory_size, scale_init_precond, **extra):
    del extra
    require_params("gradopt.scale_by_lbfgs", params)
    started = state.count > 0
    slot = (state.count - 1) % memory_size  # where the newest pair goes
    s = jax.tree.map(
        lambda a, b: jnp.where(started, a - b, jnp.zeros_like(a)), params, state.params
    )
    y = jax.tree.map(
        lambda a, b: jnp.where(started, a - b, jnp.zeros_like(a)), updates, state.updates
    )
    sy = tree_vdot(y, s)
    rho = jnp.where(started & (sy != 0.0), 1.0 / jnp.where(sy == 0.0, 1.0, sy), 0.0)
    s_mem = jax.tree.map(lambda mem, x: mem.at[slot].set(x), state.diff_params_memory, s)
    y_mem = jax.tree.map(lambda mem, x: mem.at[slot].set(x), state.diff_updates_memory, y)
    rho_mem = state.weights_memory.at[slot].set(rho.astype(state.weights_memory.dtype))
    if scale_init_precond:
        yy = tree_vdot(y, y)
        gamma = jnp.where(yy > 0.0, sy / jnp.where(yy > 0.0, yy, 1.0), 1.0)
        first = jnp.minimum(1.0, 1.0 / jnp.sqrt(tree_vdot(updates, updates)))
        gamma = jnp.where(started, gamma, first)  # gamma_0 = min(1, 1/|g_0|)
    else:
        gamma = jnp.ones([], jnp.float32)
    direction = _two_loop(updates, s_mem, y_mem, rho_mem, gamma, state.count % memory_size)
    new = ScaleByLbfgsState(
        count=increment(state.count),
        params=params,
        updates=updates,
        diff_params_memory=s_mem,
        diff_updates_memory=y_mem,
        weights_memory=rho_mem,
    )
    return direction, new


def scale_by_lbfgs(
    memory_size: int = 10, *, scale_init_precond: bool = True
) -> GradientTransformation:
    """Precondition the gradient by L-BFGS's inverse-Hessian estimate (see :func:`gradopt.lbfgs`).

    Args:
      memory_size: number of pairs ``(s_i, y_i)`` kept, an int >= 1.
      scale_init_precond: start the recursion from ``gamma_k I`` with
        ``gamma_k = <s, y> / <y, y>`` of the newest pair (the first step uses
        ``min(1, 1 / |g_0|)``); with False, from ``I``. Keyword only.

    Returns:
      A transform that needs ``params`` and returns ``P_k g_k`` (no sign flip).

    Note:
      On complex parameters every inner product is ``Re <a, b>`` (that of the
      realified parameters), so ``rho_i`` and ``gamma_k`` are real, as in
      ``optax.scale_by_lbfgs``.
    """
    where = "gradopt.scale_by_lbfgs"
    if isinstance(memory_size, bool) or not isinstance(memory_size, int):
        raise TypeError(f"{where}: memory_size must be an int >= 1, got {memory_size!r}.")
    if memory_size < 1:
        raise ValueError(f"{where}: memory_size must be >= 1, got {memory_size}. Use 10.")
    check_flag(where, "scale_init_precond", scale_init_precond)
    return transform(
        _lbfgs_init, _lbfgs_update, memory_size=memory_size, scale_init_precond=scale_init_precond
    )
