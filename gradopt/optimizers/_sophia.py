"""Sophia: clipped momentum divided by a diagonal Hessian estimate."""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain
from gradopt.core._checks import check_learning_rate, check_weight_decay
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._sophia import SOPHIA_REAL_ONLY, scale_by_sophia
from gradopt.transforms._weight_decay import add_decayed_weights


def sophia(
    learning_rate=1e-3,
    b1=0.965,
    b2=0.99,
    eps=1e-8,
    *,
    weight_decay=1e-4,
    gamma=0.01,
    clip_threshold=1.0,
    update_interval: int = 10,
    estimator: str = "hutchinson",
    gnb_batch_size=1.0,
    seed: int = 0,
) -> GradientTransformation:
    r"""Sophia (Liu, Li, Hall, Liang & Ma, 2023).

    With ``t`` the 1-based step and ``h`` the EMA of diagonal Hessian estimates::

        m = b1 m + (1 - b1) g
        u = clip(m / (1 - b1^t) / max(gamma * h, eps), -clip_threshold, clip_threshold)
        w = w - learning_rate * (u + weight_decay * w)
        if (t - 1) % update_interval == 0:            # after the step, as in optax
            h_hat = z * (H z), z Rademacher           (estimator="hutchinson", Sophia-H)
                  | B * g_s * g_s                     (estimator="gnb", Sophia-G; g_s the
                                                       gradient on labels sampled from the model)
            h = b2 h + (1 - b2) h_hat

    ``update(grad, state, params, value_fn=f, **data)`` (Hutchinson) or
    ``sampled_value_fn=fs`` with ``fs(params, key, **data)`` (GNB).

    Cost per step: Adam's, plus every ``update_interval`` steps one
    Hessian-vector product (about two gradients; Hutchinson) or one gradient
    (GNB), inside a ``lax.cond``. Memory: two floats per parameter and a key.

    Args:
      learning_rate: a non-negative number or schedule.
      b1, b2: decay rates, in [0, 1).
      eps: floor of the denominator, > 0.
      weight_decay: decoupled decay, >= 0. Keyword only, as are the rest.
      gamma: the scale ``gamma > 0`` of the Hessian estimate.
      clip_threshold: elementwise clip of the preconditioned step, > 0 or None.
      update_interval: refresh ``h`` every ``k`` steps.
      estimator: ``"hutchinson"`` or ``"gnb"``.
      gnb_batch_size: ``B`` for the GNB estimator.
      seed: seed of the random vectors.

    Returns:
      ``chain(scale_by_sophia(...), add_decayed_weights(weight_decay),
      scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> f = lambda w: jnp.sum(w ** 2)
      >>> opt, w = gradopt.sophia(0.1, weight_decay=0.0), jnp.array([1.0, -1.0])
      >>> updates, state = opt.update(jax.grad(f)(w), opt.init(w), w, value_fn=f)
      >>> updates  # h = 0 on the first step: the clip gives -lr * sign(g)
      Array([-0.1,  0.1], dtype=float32)

    Note:
      Equal to ``optax.contrib.sophia`` with the same arguments (tested):
      Rademacher vectors, the estimate refreshed after the step, decoupled
      weight decay. The paper's Sophia-H draws Gaussian vectors; its
      reference code applies the decay before the step (same result).

      Complex parameters are refused at ``init`` (TypeError): a complex entry
      has a 2 x 2 real curvature block, which one diagonal estimate does not
      describe. ``optax.contrib.sophia`` fails on them too (its clipping
      raises a ValueError on complex values).

    References:
      Liu, Li, Hall, Liang & Ma, Sophia: A scalable stochastic second-order
      optimizer for language model pre-training, ICLR 2024, arXiv:2305.14342;
      Hutchinson, A stochastic estimator of the trace of the influence matrix,
      1989.
    """
    where = "gradopt.sophia"
    check_learning_rate(where, learning_rate)
    check_weight_decay(where, weight_decay)
    tx = chain(
        scale_by_sophia(
            b1,
            b2,
            eps,
            gamma,
            clip_threshold,
            update_interval=update_interval,
            estimator=estimator,
            gnb_batch_size=gnb_batch_size,
            seed=seed,
        ),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )
    return real_only(tx, name=where, reason=SOPHIA_REAL_ONLY)
