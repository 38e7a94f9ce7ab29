"""Adafactor's pieces: the factored second moment, clipping by a block's RMS, and
the scaling by the parameter's RMS (the "relative step").

For a leaf whose two largest axes (sizes ``n`` and ``m``) are both at least
``min_dim_size_to_factor``, the second moment is not kept as an ``n x m`` array
but as its row and column means ``R`` and ``C``; their product over the total
mean, ``R C^T / mean(R)``, is the rank-1 estimate of Shazeer & Stern (2018),
which needs ``n + m`` numbers instead of ``n m``. The rule is on
:func:`gradopt.adafactor`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.core._base import EmptyState, GradientTransformation, transform, tree_map
from gradopt.core._checks import check_eps, check_flag, check_scalar
from gradopt.core._numerics import (
    abs_sq,
    as_compute,
    div_real,
    hyper,
    increment,
    mul_real,
    real_dtype,
    zero_count,
)

PyTree = Any


def factored_dims(shape, factored: bool, min_dim_size_to_factor: int):
    """The two axes to factor over, ``(d1, d0)`` (``d0`` the largest), or None."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)  # as optax, so that ties pick the same axes
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


class FactoredRmsState(NamedTuple):
    """State of :func:`scale_by_factored_rms`.

    Attributes:
      count: the number of updates seen (int32, saturating).
      v_row: per leaf, the second moment averaged over the largest axis (a
        placeholder of shape (1,) for unfactored leaves).
      v_col: per leaf, averaged over the second-largest axis (or a placeholder).
      v: per unfactored leaf, the full second moment (a placeholder of shape
        (1,) for factored leaves).
    """

    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count
    v_row: PyTree
    v_col: PyTree
    v: PyTree


def _fr_init(params, *, factored, decay_rate, step_offset, min_dim_size_to_factor, eps):
    del decay_rate, step_offset, eps
    min_dim_size_to_factor = _as_int("gradopt.scale_by_factored_rms", min_dim_size_to_factor)

    def one(p):
        p = jnp.asarray(p)
        dims = factored_dims(p.shape, factored, min_dim_size_to_factor)
        real = real_dtype(p.dtype)  # statistics of |g|**2: real for complex parameters
        dummy = jnp.zeros((1,), real)
        if dims is None:
            return dummy, dummy, jnp.zeros(p.shape, real)
        d1, d0 = dims
        row = jnp.zeros(np.delete(p.shape, d0), real)
        col = jnp.zeros(np.delete(p.shape, d1), real)
        return row, col, dummy

    leaves, treedef = jax.tree.flatten(params)
    triples = [one(p) for p in leaves]
    rows, cols, vs = ([jax.tree.unflatten(treedef, [t[i] for t in triples])] for i in range(3))
    return FactoredRmsState(zero_count(), rows[0], cols[0], vs[0])


def _is_factored(g, row, col, v) -> bool:
    """Whether ``init`` factored this leaf, read from the state's shapes (so that
    ``update`` needs neither ``factored`` nor ``min_dim_size_to_factor``), and
    a ValueError if the state's shapes do not fit the gradient's."""
    shape = jnp.shape(g)
    if jnp.shape(v) == shape:
        return False
    dims = factored_dims(shape, True, 0)
    if dims is not None and jnp.shape(v) == (1,):
        d1, d0 = dims
        if jnp.shape(row) == tuple(np.delete(shape, d0)) and jnp.shape(col) == tuple(
            np.delete(shape, d1)
        ):
            return True
    raise ValueError(
        f"gradopt.scale_by_factored_rms: an updates leaf has shape {shape}, but the state "
        f"was built for another shape (statistics of shapes {jnp.shape(row)}, "
        f"{jnp.shape(col)}, {jnp.shape(v)}). Pass updates with the shapes of the parameters "
        "the optimizer was initialised with."
    )


def _fr_update(
    updates,
    state,
    params=None,
    *,
    factored,
    decay_rate,
    step_offset,
    min_dim_size_to_factor,
    eps,
    **extra,
):
    del params, factored, min_dim_size_to_factor, extra
    # t in float32: an int32 count near its maximum plus one would wrap around. Before
    # step_offset, t would be <= 0 and t**(-decay_rate) NaN or negative (optax's is):
    # those steps count as the first, beta_t = 0
    t = state.count.astype(jnp.float32) - jnp.asarray(step_offset).astype(jnp.float32) + 1.0
    t = jnp.maximum(t, 1.0)
    beta = 1.0 - t ** (-hyper(decay_rate, t))

    def one(g, row, col, v):
        g = jnp.asarray(g)
        gc = as_compute(g)
        r = jnp.zeros([], real_dtype(gc.dtype))  # |g|**2 is real for complex g
        b = beta.astype(r.dtype)
        # g**2 is capped at max / size, so that no mean below overflows (1e30 in float32)
        bound = float(jnp.finfo(r.dtype).max) / max(gc.size, 1)
        sq = jnp.minimum(abs_sq(gc), bound) + hyper(eps, r)
        if not _is_factored(g, row, col, v):
            new_v = b * as_compute(v) + (1 - b) * sq
            return mul_real(gc, new_v**-0.5).astype(g.dtype), row, col, new_v.astype(v.dtype)
        d1, d0 = factored_dims(g.shape, True, 0)
        new_row = b * as_compute(row) + (1 - b) * jnp.mean(sq, axis=d0)
        new_col = b * as_compute(col) + (1 - b) * jnp.mean(sq, axis=d1)
        reduced_d1 = d1 - 1 if d1 > d0 else d1
        row_factor = (new_row / jnp.mean(new_row, axis=reduced_d1, keepdims=True)) ** -0.5
        col_factor = new_col**-0.5
        factor = jnp.expand_dims(row_factor, d0) * jnp.expand_dims(col_factor, d1)
        out = mul_real(gc, factor)
        return out.astype(g.dtype), new_row.astype(row.dtype), new_col.astype(col.dtype), v

    results = tree_map(
        one, updates, state.v_row, state.v_col, state.v, rest_what="state", same_shapes=False
    )
    treedef = jax.tree.structure(updates)
    flat = treedef.flatten_up_to(results)
    pick = [jax.tree.unflatten(treedef, [r[i] for r in flat]) for i in range(4)]
    return pick[0], FactoredRmsState(increment(state.count), pick[1], pick[2], pick[3])


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate=0.8,
    step_offset=0,
    min_dim_size_to_factor: int = 128,
    eps=1e-30,
) -> GradientTransformation:
    """Divide by the root of Adafactor's (factored) second moment.

    With ``beta_t = 1 - t**(-decay_rate)`` (``t`` counted from ``step_offset``)
    and ``g2 = g**2 + eps``: for a factored leaf, ``R = beta_t R + (1 - beta_t)
    mean(g2, over the largest axis)`` and ``C`` likewise over the second
    largest, and the output is ``g / sqrt(R C / mean(R))``; any other leaf keeps
    ``v = beta_t v + (1 - beta_t) g2`` and outputs ``g / sqrt(v)``. The full
    rule is on :func:`gradopt.adafactor`.

    Args:
      factored: factor the statistics of leaves with two large enough axes.
      decay_rate: the exponent ``c`` of ``beta_t = 1 - t**(-c)``, >= 0 (0.8).
      step_offset: the step the schedule counts from (fine-tuning), an int;
        steps before it use ``beta_t = 0``, as the first.
      min_dim_size_to_factor: factor only when the two largest axes both have
        at least this many entries (an int >= 0; 128).
      eps: > 0, added to ``g**2`` (1e-30).

    Returns:
      A gradient transformation with state :class:`FactoredRmsState`.
    """
    where = "gradopt.scale_by_factored_rms"
    _check_factored(where, factored, decay_rate, step_offset, min_dim_size_to_factor, eps)
    return transform(
        _fr_init,
        _fr_update,
        factored=factored,
        decay_rate=decay_rate,
        step_offset=step_offset,
        min_dim_size_to_factor=min_dim_size_to_factor,
        eps=eps,
    )


def _check_factored(
    where, factored, decay_rate, step_offset, min_dim_size_to_factor, eps, names=None
):
    n = names or {}
    check_flag(where, n.get("factored", "factored"), factored)
    check_scalar(
        where, n.get("decay_rate", "decay_rate"), decay_rate, low=0.0, fix="0.8 is the paper's."
    )
    check_scalar(where, n.get("step_offset", "step_offset"), step_offset, low=0.0, fix="Use 0.")
    name = n.get("min_dim_size_to_factor", "min_dim_size_to_factor")
    if not isinstance(min_dim_size_to_factor, jax.core.Tracer):  # optax.inject_hyperparams
        size = _as_int(where, min_dim_size_to_factor, name)
        if size < 0:
            raise ValueError(f"{where}: {name} must be >= 0, got {size}. Use 128.")
    check_eps(where, eps)


def _as_int(where, value, name="min_dim_size_to_factor") -> int:
    """A Python int, a concrete integer array, or a TypeError (it fixes the state's shapes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        not isinstance(value, (bool, jax.core.Tracer))
        and getattr(value, "shape", None) == ()
        and jnp.issubdtype(jnp.result_type(value), jnp.integer)
    ):
        return int(value)
    raise TypeError(
        f"{where}: {name} must be an int, got {value!r}. It decides the state's shapes, so "
        "it cannot be traced: with inject_hyperparams, list it in static_args."
    )


# ----------------------------------------------------------------------------
# clipping by a block's RMS, scaling by the parameter's RMS


def _empty_init(params, **hyper_):
    del params, hyper_
    return EmptyState()


def _block_rms(x):
    x = as_compute(x)
    m = jnp.max(jnp.abs(x), initial=0.0)  # scaled, so that 1e30 has a finite RMS
    scale = jnp.where((m > 0) & jnp.isfinite(m), m, jnp.ones_like(m))
    if not x.size:
        return jnp.zeros([], real_dtype(x.dtype))
    return scale * jnp.sqrt(jnp.mean(abs_sq(div_real(x, scale))))  # real for complex x


def _clip_rms_update(updates, state, params=None, *, threshold, **extra):
    del params, extra

    def one(u):
        u = jnp.asarray(u)
        c = as_compute(u)
        rms = _block_rms(c)
        return div_real(c, jnp.maximum(1.0, rms / hyper(threshold, rms))).astype(u.dtype)

    return jax.tree.map(one, updates), state


def clip_by_block_rms(threshold) -> GradientTransformation:
    """Divide each leaf by ``max(1, RMS(leaf) / threshold)`` (Adafactor's update clipping).

    Args:
      threshold: ``d`` > 0 (the paper's 1.0).

    Returns:
      A gradient transformation with an empty state.
    """
    check_scalar(
        "gradopt.clip_by_block_rms",
        "threshold",
        threshold,
        low=0.0,
        low_open=True,
        fix="1.0 is the paper's.",
    )
    return transform(_empty_init, _clip_rms_update, threshold=threshold)


def _param_rms_update(updates, state, params=None, *, min_scale, **extra):
    del extra
    if params is None:
        raise ValueError(
            "gradopt.scale_by_param_block_rms needs the parameters: call "
            "update(updates, state, params)."
        )

    def one(u, p):
        u = jnp.asarray(u)
        c = as_compute(u)
        real = real_dtype(c.dtype)
        rms = jnp.maximum(_block_rms(p).astype(real), hyper(min_scale, jnp.zeros([], real)))
        return mul_real(c, rms).astype(u.dtype)

    return tree_map(one, updates, params, rest_what="params"), state


def scale_by_param_block_rms(min_scale=1e-3) -> GradientTransformation:
    """Multiply each leaf by ``max(min_scale, RMS(parameter))`` (Adafactor's relative step).

    Args:
      min_scale: the paper's ``eps_2`` >= 0 (1e-3), so that parameters that
        start at zero still move.

    Returns:
      A gradient transformation with an empty state; ``update`` needs ``params``.
    """
    check_scalar(
        "gradopt.scale_by_param_block_rms", "min_scale", min_scale, low=0.0, fix="Use 1e-3."
    )
    return transform(_empty_init, _param_rms_update, min_scale=min_scale)
