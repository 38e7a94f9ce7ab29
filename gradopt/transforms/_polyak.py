"""The Polyak step size: ``(f(w) - f_min) / ||g||**2``, which needs the loss value.

The full rule is on :func:`gradopt.polyak_sgd`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradopt.core._base import EmptyState, GradientTransformation, transform
from gradopt.core._checks import check_choice, check_scalar
from gradopt.core._numerics import as_compute, hyper
from gradopt.transforms._clipping import global_norm
from gradopt.transforms._real_only import real_only

_TINY = float(jnp.finfo(jnp.float64).eps)  # optax's threshold for a zero gradient


def _polyak_init(params, **hyper):
    del params, hyper
    return EmptyState()


def _polyak_update(
    updates, state, params=None, *, f_min, max_learning_rate, eps, variant, value=None, **extra
):
    del params, extra
    if value is None:
        raise TypeError(
            "gradopt.scale_by_polyak needs the loss: call update(updates, state, params, "
            "value=loss) with the loss at the current parameters."
        )
    norm = global_norm(updates)
    sq = jnp.square(norm)
    gap = jnp.asarray(value).astype(sq.dtype) - hyper(f_min, sq)
    if variant == "sps+":
        gap = jnp.maximum(gap, 0)
    denominator = sq + hyper(eps, sq)
    safe = jnp.where(denominator <= _TINY, jnp.ones_like(sq), denominator)
    step = jnp.minimum(gap / safe, hyper(max_learning_rate, sq))
    step = jnp.where(denominator <= _TINY, jnp.zeros_like(sq), step)

    def scale(u):
        c = as_compute(u)
        return (c * step.astype(c.dtype)).astype(jnp.asarray(u).dtype)

    return jax.tree.map(scale, updates), state


def scale_by_polyak(
    f_min=0.0, max_learning_rate=1.0, eps=0.0, variant: str = "sps"
) -> GradientTransformation:
    """Multiply the updates by the Polyak step ``min((f - f_min) / (||u||**2 + eps), max)``.

    ``f`` is the loss passed to ``update(..., value=f)``; ``||u||`` the global
    norm of the incoming updates. Where ``||u||**2 + eps`` is zero the step is 0.

    Args:
      f_min: a lower bound of the loss (0 for interpolating models).
      max_learning_rate: the largest step, >= 0.
      eps: >= 0, added to the squared norm.
      variant: ``"sps"`` or ``"sps+"`` (the gap ``f - f_min`` clipped at 0).

    Returns:
      A stateless gradient transformation; ``update`` needs ``value=``.
    """
    where = "gradopt.scale_by_polyak"
    check_scalar(where, "f_min", f_min)
    check_scalar(where, "max_learning_rate", max_learning_rate, low=0.0, fix="Use e.g. 1.0.")
    check_scalar(where, "eps", eps, low=0.0, fix="Use 0.0 or a small value such as 1e-8.")
    check_choice(where, "variant", variant, ("sps", "sps+"))
    return real_only(
        transform(
            _polyak_init,
            _polyak_update,
            f_min=f_min,
            max_learning_rate=max_learning_rate,
            eps=eps,
            variant=variant,
        ),
        name="gradopt.scale_by_polyak",
        reason="the Polyak step size is defined for real parameters (as optax.polyak_sgd)",
    )
