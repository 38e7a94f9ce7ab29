"""The ascent step of sharpness-aware minimisation: ``e = rho * g / |g|``.

:func:`normalize_by_global_norm` divides the whole gradient tree by its global
norm; :func:`sam_ascent` scales that by ``rho``. Adding ``e`` to the parameters
gives SAM's adversarial point (see :func:`gradopt.sam` for the two-gradient loop).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradopt.core._base import EmptyState, GradientTransformation, transform
from gradopt.core._chain import chain
from gradopt.core._checks import check_scalar
from gradopt.core._numerics import as_compute
from gradopt.transforms._clipping import global_norm
from gradopt.transforms._scale import scale


def _empty_init(params, **hyper):
    del params, hyper
    return EmptyState()


def _normalize_update(updates, state, params=None, **extra):
    del params, extra
    norm = global_norm(updates)
    safe = jnp.where(norm > 0, norm, 1.0)  # a zero gradient stays zero

    def one(u):
        u = jnp.asarray(u)
        c = as_compute(u)
        return (c / safe.astype(c.dtype)).astype(u.dtype)

    return jax.tree.map(one, updates), state


def normalize_by_global_norm() -> GradientTransformation:
    """Divide the updates by their global norm, ``u / |u|`` (a zero tree stays zero).

    Returns:
      A gradient transformation with an empty state.

    Note:
      ``optax.contrib.normalize`` divides 0 by 0 for a zero gradient; here
      the result is zero.
    """
    return transform(_empty_init, _normalize_update)


def sam_ascent(rho=0.05) -> GradientTransformation:
    """SAM's ascent step ``e = rho * g / |g|`` (Foret et al., 2021): add it to the
    parameters to reach the adversarial point ``w + e``.

    Args:
      rho: the radius of the neighbourhood, >= 0 (the paper's 0.05).

    Returns:
      ``chain(normalize_by_global_norm(), scale(rho))``.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> tx = gradopt.sam_ascent(0.5)
      >>> e, _ = tx.update({"w": jnp.array([3.0, 4.0])}, tx.init({"w": jnp.zeros(2)}))
      >>> e["w"]
      Array([0.3, 0.4], dtype=float32)
    """
    check_scalar("gradopt.sam_ascent", "rho", rho, low=0.0, fix="0.05 is the paper's.")
    return chain(normalize_by_global_norm(), scale(rho))
