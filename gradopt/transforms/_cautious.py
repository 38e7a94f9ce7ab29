"""Cautious optimizers: any update masked where it disagrees with the gradient."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, call_update, transform, tree_map
from gradopt.core._checks import check_gradients
from gradopt.core._numerics import mul_real, real_dtype, wider

PyTree = Any


class CautiousState(NamedTuple):
    """State of :func:`cautious`: the inner optimizer's state."""

    inner_state: PyTree


def _cautious_init(params, *, inner):
    return CautiousState(inner_state=inner.init(params))


def _mask_leaf(u, g):
    u, g = jnp.asarray(u), jnp.asarray(g)
    c = wider(u.dtype, g.dtype)
    uc = u.astype(c)
    # An update descends where it has the sign opposite to the gradient's; for
    # complex numbers, where Re(u conj(g)) < 0 (the two as vectors of the plane).
    agree = (jnp.real(uc * jnp.conj(g.astype(c))) < 0).astype(real_dtype(c))
    scale = u.size / (jnp.sum(agree) + 1)
    return mul_real(uc, agree * scale).astype(u.dtype)


def _cautious_update(updates, state, params=None, *, inner, **extra):
    grads = check_gradients(updates, params)
    out, inner_state = call_update(inner, grads, state.inner_state, params, extra)
    masked = tree_map(_mask_leaf, out, grads, rest_what="gradients")
    return masked, CautiousState(inner_state=inner_state)


def cautious(inner) -> GradientTransformation:
    r"""A cautious optimizer (Liang et al., 2024): keep the update only where it descends.

    With ``u`` the update of ``inner`` (the step added to ``w``) and ``g``
    the gradient, for every leaf of ``d`` entries::

        phi = (u * g < 0)                       # the step opposes the gradient
        w = w + u * phi * d / (sum(phi) + 1)

    Coordinates whose momentum points uphill are frozen for this step, and
    the others are scaled up so that the step keeps its size.

    Args:
      inner: any gradient transformation (``gradopt.adamw(1e-3)``,
        ``gradopt.lion(1e-4)``, an optax transform...).

    Returns:
      A gradient transformation with state :class:`CautiousState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.cautious(gradopt.sgd(0.1, momentum=0.9))
      >>> state = opt.init({"w": jnp.zeros(3)})
      >>> _, state = opt.update({"w": jnp.array([1.0, 1.0, 1.0])}, state)
      >>> updates, state = opt.update({"w": jnp.array([1.0, -0.5, 1.0])}, state)
      >>> updates["w"]  # the middle momentum (0.4) still points uphill: frozen
      Array([-0.19, -0.  , -0.19], dtype=float32)

    Note:
      The rule is that of the authors' code (mask ``u * g`` strictly
      negative, scale ``d / (nnz + 1)`` per tensor); the paper's Algorithm
      writes the same scaling. Their C-AdamW masks the Adam direction only and
      applies the decoupled weight decay unmasked: ``cautious(adamw(...))``
      masks the update with the decay included; for theirs, chain
      ``cautious(adam(...))`` with ``add_decayed_weights`` scaled by the
      learning rate. None of optax, PyTorch or Keras has cautious optimizers.

    References:
      Liang, Chen, Liu & Liu, Cautious optimizers: Improving training with
      one line of code, 2024, arXiv:2411.16085.
    """
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            f"gradopt.cautious: inner is {inner!r} of type {type(inner).__name__}, which is not "
            "a gradient transformation. Pass e.g. gradopt.adamw(1e-3)."
        )
    return transform(_cautious_init, _cautious_update, inner=inner)
