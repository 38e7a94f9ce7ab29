"""Annealed Gaussian gradient noise (Neelakantan et al., 2015)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, transform
from gradopt.core._checks import check_scalar
from gradopt.core._numerics import (
    as_compute,
    hyper,
    increment,
    mul_real,
    real_dtype,
    zero_count,
)


class AddNoiseState(NamedTuple):
    """State of :func:`add_gradient_noise`.

    Attributes:
      count: the number of updates so far (``t`` of the variance schedule), int32.
      key: the PRNG key (a raw ``uint32[2]`` key) for the next step's noise.
    """

    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count
    key: jax.Array


def _noise_init(params, *, eta, gamma, seed):
    del params, eta, gamma
    return AddNoiseState(count=zero_count(), key=jax.random.PRNGKey(seed))


def _noise_update(updates, state, params=None, *, eta, gamma, seed, **extra):
    del params, seed, extra
    leaves, treedef = jax.tree.flatten(updates)
    keys = jax.random.split(state.key, len(leaves) + 1)
    noisy = []
    for leaf, key in zip(leaves, keys[1:], strict=True):
        c = as_compute(leaf)
        r = jnp.zeros([], real_dtype(c.dtype))
        t = state.count.astype(r.dtype)
        variance = hyper(eta, r) / jnp.power(1 + t, hyper(gamma, r))
        # complex leaves: circular complex noise, E|n|**2 = variance
        noise = mul_real(jax.random.normal(key, c.shape, c.dtype), jnp.sqrt(variance))
        noisy.append((c + noise).astype(leaf.dtype))
    new_state = AddNoiseState(count=increment(state.count), key=keys[0])
    return jax.tree.unflatten(treedef, noisy), new_state


def add_gradient_noise(eta=0.01, gamma=0.55, seed: int = 0) -> GradientTransformation:
    """Add annealed Gaussian noise to the updates.

    At step ``t`` (0 for the first update)::

        g_t <- g_t + N(0, sigma_t^2),    sigma_t^2 = eta / (1 + t)^gamma

    with independent noise for every entry of every leaf. A complex entry gets
    circularly symmetric complex noise of the same variance ``E|n|^2 =
    sigma_t^2`` (real and imaginary parts each of variance ``sigma_t^2 / 2``). Place it on the raw
    gradient, before the optimizer (``chain(add_gradient_noise(0.3), adam(1e-3))``),
    as in the paper.

    The PRNG key lives in the state: every step splits it into one key per leaf
    and the next step's key, so the noise is deterministic given ``seed``,
    different at every step and independent between leaves. Noise is drawn in
    the leaf's compute dtype (float32 for bfloat16 leaves) and added before the
    result is cast back.

    Args:
      eta: the initial noise variance ``eta`` (non-negative). The paper picks
        it from {0.01, 0.3, 1.0}. Traced values are accepted.
      gamma: the decay exponent of the variance (non-negative), 0.55 in the paper.
      seed: a Python integer seeding the PRNG key.

    Returns:
      A ``GradientTransformation`` whose state is :class:`AddNoiseState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> tx = gradopt.chain(gradopt.add_gradient_noise(eta=0.3, seed=1), gradopt.sgd(0.1))
      >>> params = {"w": jnp.zeros(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.ones(3)}, state, params)
      >>> updates["w"].shape, bool(jnp.all(updates["w"] != -0.1))  # -0.1 * (g + noise)
      ((3,), True)

    References:
      Neelakantan, Vilnis, Le, Sutskever, Kaiser, Kurach, Martens, "Adding
      Gradient Noise Improves Learning for Very Deep Networks", 2015,
      arXiv:1511.06807.

    Note:
      ``eta`` is the *variance* at ``t = 0``, as in the paper's
      ``sigma_t^2 = eta / (1 + t)^gamma``; the standard deviation is its square root.
    """
    where = "gradopt.add_gradient_noise"
    check_scalar(where, "eta", eta, low=0.0, fix="The paper uses 0.01, 0.3 or 1.0.")
    check_scalar(where, "gamma", gamma, low=0.0, fix="The paper uses 0.55.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(
            f"{where}: seed must be a Python int, got {seed!r} of type {type(seed).__name__}."
        )
    return transform(_noise_init, _noise_update, eta=eta, gamma=gamma, seed=seed)
