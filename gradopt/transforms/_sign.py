"""Signs of the update: ``scale_by_sign`` and Lion's interpolated momentum.

The rules are written out on the named optimizers (:func:`gradopt.sign_sgd`,
:func:`gradopt.signum`, :func:`gradopt.lion`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from gradopt.core._base import EmptyState, GradientTransformation
from gradopt.core._checks import check_decay, check_dtype
from gradopt.core._elementwise import Elementwise, elementwise, no_step
from gradopt.core._numerics import hyper, one_minus, state_zeros
from gradopt.transforms._real_only import real_only

PyTree = Any


def _sign_init(params):
    del params
    return EmptyState()


def _sign_leaf(x, fields, ctx, p):
    del fields, ctx, p
    return jnp.sign(x), {}


_SIGN = Elementwise("gradopt.scale_by_sign", _sign_init, no_step, _sign_leaf)


def scale_by_sign() -> GradientTransformation:
    """Replace every coordinate of the updates by its sign (-1, 0 or 1).

    The direction of signSGD and Signum (Bernstein et al., 2018); see
    :func:`gradopt.sign_sgd`. NaN stays NaN.

    Returns:
      A stateless gradient transformation.
    """
    return real_only(
        elementwise(_SIGN),
        name="gradopt.scale_by_sign",
        reason="the sign of a complex number is not a step direction",
    )


class LionState(NamedTuple):
    """State of :func:`scale_by_lion`: the momentum ``m``."""

    mu: PyTree


def _lion_init(params, *, b1, b2, dtype):
    del b1, b2
    return LionState(mu=state_zeros(params, dtype))


def _lion_leaf(x, fields, ctx, p, *, b1, b2, dtype):
    del ctx, p, dtype
    m = fields["mu"]
    c = hyper(b1, x) * m + one_minus(b1, x) * x
    return c, {"mu": hyper(b2, x) * m + one_minus(b2, x) * x}


_LION = Elementwise("gradopt.scale_by_lion", _lion_init, no_step, _lion_leaf, ("mu",))


def scale_by_lion(b1=0.9, b2=0.99, *, dtype=None) -> GradientTransformation:
    """Lion's interpolation: outputs ``b1*m + (1-b1)*g``, then ``m = b2*m + (1-b2)*g``.

    The output is not yet a sign: :func:`gradopt.lion` follows it with
    :func:`scale_by_sign`. Two decay rates, one buffer: the update
    interpolates with ``b1``, the momentum tracks the gradient with ``b2``.

    Args:
      b1: the interpolation weight of the momentum in the update, in [0, 1).
      b2: the decay rate of the momentum, in [0, 1).
      dtype: storage dtype of ``m`` (None: each leaf's dtype). Keyword only.

    Returns:
      A gradient transformation with state :class:`LionState`.
    """
    where = "gradopt.scale_by_lion"
    check_decay(where, "b1", b1)
    check_decay(where, "b2", b2)
    check_dtype(where, dtype)
    return real_only(
        elementwise(_LION, b1=b1, b2=b2, dtype=dtype),
        name="gradopt.scale_by_lion",
        reason="the sign of a complex number is not a step direction",
    )
