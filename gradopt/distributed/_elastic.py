"""The elastic-averaging rule of EASGD (Zhang, Choromanska & LeCun, 2015).

One exchange between a worker's parameters ``x`` and the center ``c``::

    e = alpha * (x - c)
    x = x - e
    c = c + e          # summed over the workers that exchange

Both the synchronous form (every worker exchanges at once over a mesh axis) and
the asynchronous form (a worker exchanges with a parameter server) are built on
these two functions, so the rule is written once and tested once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradopt.core._numerics import compute_dtype


def elastic_difference(params, center, alpha):
    """``alpha * (x - c)`` leaf by leaf, in each parameter's dtype.

    Args:
      params: a worker's parameters ``x`` (a pytree of arrays).
      center: the center variable ``c``, a tree of the same structure and shapes.
      alpha: the moving rate, a number or scalar array (``alpha >= 0``).

    Returns:
      The elastic difference ``e`` (same tree and dtypes as ``params``).
    """

    def leaf(x, c):
        x = jnp.asarray(x)
        dtype = compute_dtype(x.dtype)
        a = jnp.asarray(alpha).astype(dtype)
        return (a * (x.astype(dtype) - jnp.asarray(c).astype(dtype))).astype(x.dtype)

    return jax.tree.map(leaf, params, center)


def elastic_exchange(params, center, alpha):
    """One worker's exchange: returns ``(x - e, c + e)`` with ``e = alpha * (x - c)``.

    With several workers exchanging against the same center in one round, add
    each worker's ``e`` to the center (``c + sum_i e_i``); use
    :func:`elastic_difference` for that.
    """
    e = elastic_difference(params, center, alpha)
    new_params = jax.tree.map(
        lambda x, d: (jnp.asarray(x) - d).astype(jnp.asarray(x).dtype), params, e
    )
    new_center = jax.tree.map(
        lambda c, d: (jnp.asarray(c) + d).astype(jnp.asarray(c).dtype), center, e
    )
    return new_params, new_center
