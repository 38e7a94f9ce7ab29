"""Layer-wise scalings: the trust ratio of LARS, LAMB and Fromage, NovoGrad's
per-layer second moment, and the parameter rescaling of Fromage.

A "layer" is a parameter leaf: these stages reduce over each leaf (its norm)
and so are not elementwise; they sit in a chain between fused stages. Norms
are computed scaled by the leaf's largest magnitude, so a finite gradient has a
finite norm (``docs/guarantees.md``). The full rules are on
:func:`gradopt.lars`, :func:`gradopt.lamb`, :func:`gradopt.fromage` and
:func:`gradopt.novograd`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import EmptyState, GradientTransformation, transform, tree_map
from gradopt.core._checks import check_decay, check_eps, check_scalar
from gradopt.core._elementwise import Elementwise, elementwise, no_step
from gradopt.core._numerics import (
    as_compute,
    compute_dtype,
    div_real,
    hyper,
    increment,
    mul_real,
    one_minus,
    real_dtype,
    saturate,
    wider,
    zero_count,
)
from gradopt.transforms._clipping import _norm
from gradopt.transforms._second_moments import check_eps_root

PyTree = Any


def check_mask(where, name, mask):
    """None, True (every leaf), a tree of Python bools, or a callable returning one."""
    if mask is None or mask is True or callable(mask):
        return
    leaves = jax.tree.leaves(mask)
    if not all(isinstance(x, bool) for x in leaves):
        raise TypeError(
            f"{where}: {name} must be True, a tree of Python bools or a callable returning "
            f"one, got leaves {leaves[:4]!r}."
        )


def as_mask(mask):
    """``True`` means every leaf: the same as no mask."""
    return None if mask is True else mask


# ----------------------------------------------------------------------------
# trust ratio


def _empty_init(params, **hyper):
    del params, hyper
    return EmptyState()


def _ratio_leaf(u, w, *, min_norm, trust_coefficient, eps):
    u, w = jnp.asarray(u), jnp.asarray(w)
    c = wider(u.dtype, w.dtype)
    uc, wc = u.astype(c), w.astype(c)
    r = jnp.zeros([], real_dtype(c))  # the norms and the ratio are real for complex leaves
    w_norm = jnp.maximum(_norm([wc], r.dtype), hyper(min_norm, r))
    u_norm = jnp.maximum(_norm([uc], r.dtype), hyper(min_norm, r))
    ratio = hyper(trust_coefficient, r) * w_norm / (u_norm + hyper(eps, r))
    zero = (w_norm == 0) | (u_norm == 0)
    ratio = jnp.where(zero, jnp.ones_like(ratio), ratio)
    return mul_real(uc, ratio).astype(u.dtype)


def _trust_update(updates, state, params=None, *, min_norm, trust_coefficient, eps, mask, **extra):
    del extra
    if params is None:
        raise ValueError(
            "gradopt.scale_by_trust_ratio needs the parameters: call "
            "update(updates, state, params) with the current parameters."
        )
    hyper_ = dict(min_norm=min_norm, trust_coefficient=trust_coefficient, eps=eps)
    scaled = tree_map(lambda u, w: _ratio_leaf(u, w, **hyper_), updates, params, rest_what="params")
    if mask is None:
        return scaled, state
    m = mask(params) if callable(mask) else mask
    chosen = tree_map(
        lambda keep, a, b: a if keep else b,
        m,
        scaled,
        jax.tree.map(jnp.asarray, updates),
        what="mask",
        rest_what="updates",
        same_shapes=False,
    )
    return chosen, state


def scale_by_trust_ratio(
    min_norm=0.0, trust_coefficient=1.0, eps=0.0, *, mask=None
) -> GradientTransformation:
    """Scale each leaf by its trust ratio ``trust_coefficient * ||w|| / (||u|| + eps)``.

    Both norms are first raised to at least ``min_norm``; where either is
    still 0 the ratio is 1 (a zero layer or a zero update is left as it is).

    Args:
      min_norm: the smallest norm used, >= 0 (Fromage's 1e-6; 0 for LARS, LAMB).
      trust_coefficient: > 0 (LARS' 0.001; 1 for LAMB).
      eps: >= 0, added to the update's norm.
      mask: None or True (every leaf), a tree of Python bools with the
        structure of the parameters, or a callable ``params -> such a tree``;
        leaves marked False pass unchanged. Keyword only.

    Returns:
      A stateless gradient transformation whose ``update`` needs ``params``.
    """
    where = "gradopt.scale_by_trust_ratio"
    check_scalar(where, "min_norm", min_norm, low=0.0, fix="Use 0.0 (no floor) or 1e-6.")
    check_scalar(
        where,
        "trust_coefficient",
        trust_coefficient,
        low=0.0,
        low_open=True,
        fix="Use 1.0 (LAMB) or 0.001 (LARS).",
    )
    check_scalar(where, "eps", eps, low=0.0, fix="Use 0.0 or a small value such as 1e-8.")
    check_mask(where, "mask", mask)
    return transform(
        _empty_init,
        _trust_update,
        min_norm=min_norm,
        trust_coefficient=trust_coefficient,
        eps=eps,
        mask=as_mask(mask),
    )


# ----------------------------------------------------------------------------
# NovoGrad's layer-wise second moment


class LayerwiseRmsState(NamedTuple):
    """State of :func:`scale_by_layerwise_rms`: one ``v`` per leaf, and the count."""

    nu: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _lrms_init(params, *, b2, eps, eps_root):
    del b2, eps, eps_root
    nu = jax.tree.map(
        lambda p: jnp.zeros([], real_dtype(compute_dtype(jnp.result_type(p)))), params
    )  # ||g||**2: real for complex parameters
    return LayerwiseRmsState(nu=nu, count=zero_count())


def _lrms_update(updates, state, params=None, *, b2, eps, eps_root, **extra):
    del params, extra
    first = state.count == 0

    def leaf(u, v):
        uc = as_compute(u)
        r = jnp.zeros([], real_dtype(uc.dtype))  # ||g||**2 is real for a complex leaf
        n = saturate(jnp.square(_norm([uc], r.dtype)), r.dtype)
        v = v.astype(r.dtype)
        new = jnp.where(first, n, saturate(hyper(b2, r) * v + one_minus(b2, r) * n, r.dtype))
        out = div_real(uc, jnp.sqrt(new + hyper(eps_root, r)) + hyper(eps, r))
        return out.astype(jnp.asarray(u).dtype), new

    pairs = tree_map(leaf, updates, state.nu, same_shapes=False)
    treedef = jax.tree.structure(state.nu)
    flat = treedef.flatten_up_to(pairs)
    out = treedef.unflatten([a for a, _ in flat])
    nu = treedef.unflatten([b for _, b in flat])
    return out, LayerwiseRmsState(nu=nu, count=increment(state.count))


def scale_by_layerwise_rms(b2=0.25, *, eps=1e-6, eps_root=0.0) -> GradientTransformation:
    """NovoGrad's normalisation: each leaf over the root of an EMA of its squared norm.

    ``v = ||g||**2`` at the first step, then ``v = b2*v + (1-b2)*||g||**2``
    (one scalar per leaf); outputs ``g / (sqrt(v + eps_root) + eps)``.

    Args:
      b2: the decay rate of ``v``, in [0, 1).
      eps: > 0, outside the square root. Keyword only, like ``eps_root``.
      eps_root: >= 0, inside the square root.

    Returns:
      A gradient transformation with state :class:`LayerwiseRmsState`.
    """
    where = "gradopt.scale_by_layerwise_rms"
    check_decay(where, "b2", b2)
    check_eps(where, eps)
    check_eps_root(where, eps_root)
    return transform(_lrms_init, _lrms_update, b2=b2, eps=eps, eps_root=eps_root)


# ----------------------------------------------------------------------------
# Fromage's rescaling of the parameters


def _rescale_leaf(x, fields, ctx, p, *, factor):
    del fields, ctx
    f = hyper(factor, x)
    return f * x + (f - 1) * jnp.asarray(p).astype(x.dtype), {}


_RESCALE = Elementwise(
    "gradopt.rescale_params",
    _empty_init,
    no_step,
    _rescale_leaf,
    needs_params=lambda **hyper: True,
)


def rescale_params(factor) -> GradientTransformation:
    """Turn the update ``u`` into ``factor * (w + u) - w``: step, then multiply the weights.

    Fromage divides the weights by ``sqrt(1 + learning_rate**2)`` after each
    step so that their norm does not grow (:func:`gradopt.fromage`).

    Args:
      factor: the multiplier, > 0.

    Returns:
      A stateless elementwise transformation whose ``update`` needs ``params``.
    """
    check_scalar(
        "gradopt.rescale_params", "factor", factor, low=0.0, low_open=True, fix="Use e.g. 0.99."
    )
    return elementwise(_RESCALE, factor=factor)
