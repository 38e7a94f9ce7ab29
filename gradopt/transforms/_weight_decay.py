"""Decayed weights: ``u + weight_decay * w``, coupled (L2) or decoupled (AdamW).

Where the stage sits decides which: placed before the optimizer it adds the
gradient of ``weight_decay/2 * |w|^2`` (coupled L2, seen by the moment
estimates); placed after the adaptive scaling and before the learning rate it
is the decoupled decay of Loshchilov & Hutter (2019).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradopt.core._base import EmptyState, GradientTransformation, transform, tree_map
from gradopt.core._chain import chain
from gradopt.core._checks import check_scalar, concrete_value
from gradopt.core._elementwise import Elementwise, elementwise, no_step
from gradopt.core._numerics import hyper, wider


def _select(flag, decayed, plain):
    if isinstance(flag, bool):
        return decayed if flag else plain
    return jnp.where(flag, decayed, plain)


def _wd_init(params, *, weight_decay, mask):
    del params, weight_decay, mask
    return EmptyState()


def _wd_update(updates, state, params=None, *, weight_decay, mask, **extra):
    del extra
    if params is None:
        raise ValueError(
            "gradopt.add_decayed_weights needs the parameters: call "
            "update(updates, state, params) with the current parameters."
        )

    def add(u, w):
        u, w = jnp.asarray(u), jnp.asarray(w)  # Python scalar leaves
        c = wider(u.dtype, w.dtype)
        uc = u.astype(c)
        return (uc + hyper(weight_decay, uc) * w.astype(c)).astype(u.dtype)

    decayed = tree_map(add, updates, params, rest_what="params")
    if mask is None:
        return decayed, state
    m = mask(params) if callable(mask) else mask
    chosen = tree_map(
        _select, m, decayed, updates, what="mask", rest_what="updates", same_shapes=False
    )
    return chosen, state


def _wd_needs_params(*, weight_decay, mask):
    del mask
    return not is_zero(weight_decay)


def _wd_leaf(x, fields, ctx, p, *, weight_decay, mask):
    del fields, ctx, mask
    if is_zero(weight_decay):
        return x, {}
    return x + hyper(weight_decay, x) * jnp.asarray(p).astype(x.dtype), {}


_WD = Elementwise(
    "gradopt.add_decayed_weights", _wd_init, no_step, _wd_leaf, needs_params=_wd_needs_params
)


def add_decayed_weights(weight_decay, *, mask=None) -> GradientTransformation:
    """Add ``weight_decay * w`` to the updates.

    Args:
      weight_decay: ``lambda`` >= 0 (a number or a scalar array).
      mask: None (decay every parameter), a tree of Python bools with the
        structure of the parameters, or a callable ``params -> such a tree``;
        parameters marked False are left undecayed.

    Returns:
      A gradient transformation with an empty state, whatever the value of
      ``weight_decay`` (0.0 leaves the updates unchanged). Its ``update`` needs
      ``params`` unless ``weight_decay`` is a concrete 0.
    """
    check_scalar(
        "gradopt.add_decayed_weights",
        "weight_decay",
        weight_decay,
        low=0.0,
        fix="Weight decay is non-negative; use 0.0 to switch it off.",
    )
    if mask is not None and not callable(mask):
        leaves = jax.tree.leaves(mask)
        if not all(isinstance(x, bool) for x in leaves):
            raise TypeError(
                "gradopt.add_decayed_weights: mask must be a tree of Python bools (or a "
                f"callable returning one), got leaves {leaves[:4]!r}."
            )
    if mask is None:
        return elementwise(_WD, weight_decay=weight_decay, mask=None)
    return transform(_wd_init, _wd_update, weight_decay=weight_decay, mask=mask)


def is_zero(value) -> bool:
    """True for a concrete zero (a traced value is never known to be zero)."""
    return concrete_value(value) == 0


def with_l2(weight_decay, *stages) -> GradientTransformation:
    """``chain(add_decayed_weights(weight_decay), *stages)``: coupled L2, then the rule.

    The decay stage is there even for a weight decay of 0 (where it changes
    nothing and needs no params), so the state's structure is the same for
    0.0, a traced 0.0 and 1e-4.
    """
    return chain(add_decayed_weights(weight_decay), *stages)
