"""Resilient propagation: a step size per coordinate, adapted by the sign of the gradient."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from gradopt.core._base import GradientTransformation
from gradopt.core._checks import check_scalar, concrete_value
from gradopt.core._elementwise import Elementwise, elementwise, no_step
from gradopt.core._numerics import cast, full_like, state_zeros
from gradopt.transforms._real_only import real_only


class RpropState(NamedTuple):
    """State of :func:`scale_by_rprop`.

    Attributes:
      prev: the previous update's gradient, zeroed where its sign had changed.
      step_size: the current step size of every coordinate.
    """

    prev: Any
    step_size: Any


def _init(params, *, initial_step_size, eta_minus, eta_plus, min_step_size, max_step_size):
    del eta_minus, eta_plus, min_step_size, max_step_size
    return RpropState(
        prev=state_zeros(params, None), step_size=full_like(params, initial_step_size)
    )


def _leaf(
    x, fields, ctx, p, *, initial_step_size, eta_minus, eta_plus, min_step_size, max_step_size
):
    del ctx, p, initial_step_size
    product = jnp.sign(x * fields["prev"])
    down = product < 0
    factor = jnp.where(product > 0, cast(eta_plus, x), jnp.where(down, cast(eta_minus, x), 1.0))
    step_size = jnp.clip(
        fields["step_size"] * factor, cast(min_step_size, x), cast(max_step_size, x)
    )
    g = jnp.where(down, jnp.zeros_like(x), x)  # after a sign change: no step, no memory
    return jnp.sign(g) * step_size, {"prev": g, "step_size": step_size}


_RPROP = Elementwise("gradopt.scale_by_rprop", _init, no_step, _leaf, ("prev", "step_size"))


def scale_by_rprop(
    initial_step_size,
    *,
    eta_minus=0.5,
    eta_plus=1.2,
    min_step_size=1e-6,
    max_step_size=50.0,
) -> GradientTransformation:
    """Rprop's step: ``sign(g) * s`` with a step size ``s`` per coordinate (iRprop-).

    With ``g`` the incoming update and ``g_prev`` the one remembered from the
    step before::

        c = sign(g * g_prev)
        s = clip(s * (eta_plus if c > 0 else eta_minus if c < 0 else 1), min_step_size,
                 max_step_size)
        g = 0                  where c < 0
        output sign(g) * s;    g_prev = g

    The step sizes start at ``initial_step_size``; only the signs of the
    gradients matter. The output is a positive multiple of the gradient's sign:
    follow it with ``scale(-1.0)`` to descend (:func:`gradopt.compat.torch.rprop`
    is that chain).

    Args:
      initial_step_size: the first step size of every coordinate, >= 0.
      eta_minus: the factor after a sign change, in (0, 1).
      eta_plus: the factor while the sign stays, > 1.
      min_step_size, max_step_size: bounds of the step sizes,
        ``0 <= min_step_size <= max_step_size``.

    Returns:
      A gradient transformation with state :class:`RpropState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> tx = gradopt.scale_by_rprop(0.1)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> u, state = tx.update({"w": jnp.array([2.0, -3.0])}, state)
      >>> u, state = tx.update({"w": jnp.array([5.0, 1.0])}, state)
      >>> [round(float(x), 4) for x in u["w"]]  # same sign: 0.1 * 1.2; changed: no step
      [0.12, 0.0]

    Note:
      Riedmiller and Braun's Rprop also undoes the previous step after a
      sign change; this is the variant without backtracking (Igel and
      Hüsken's iRprop-), the one torch.optim.Rprop implements. optax and Keras
      have no Rprop.

    References:
      Riedmiller and Braun, A Direct Adaptive Method for Faster Backpropagation
      Learning: The RPROP Algorithm, ICNN 1993. Igel and Hüsken, Improving the
      Rprop Learning Algorithm, 2000.
    """
    where = "gradopt.scale_by_rprop"
    check_scalar(
        where,
        "initial_step_size",
        initial_step_size,
        low=0.0,
        fix="Step sizes are non-negative; 0.01 is usual.",
    )
    check_scalar(
        where,
        "eta_minus",
        eta_minus,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        fix="The step shrinks after a sign change: 0.5 is usual.",
    )
    check_scalar(
        where,
        "eta_plus",
        eta_plus,
        low=1.0,
        low_open=True,
        fix="The step grows while the sign stays: 1.2 is usual.",
    )
    check_scalar(where, "min_step_size", min_step_size, low=0.0, fix="1e-6 is usual.")
    check_scalar(where, "max_step_size", max_step_size, low=0.0, fix="50 is usual.")
    lo, hi = concrete_value(min_step_size), concrete_value(max_step_size)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(
            f"{where}: min_step_size must not exceed max_step_size, got {min_step_size!r} > "
            f"{max_step_size!r}."
        )
    return real_only(
        elementwise(
            _RPROP,
            initial_step_size=initial_step_size,
            eta_minus=eta_minus,
            eta_plus=eta_plus,
            min_step_size=min_step_size,
            max_step_size=max_step_size,
        ),
        name="gradopt.scale_by_rprop",
        reason="its step follows the sign of each coordinate and its sign changes (as optax.rprop)",
    )
