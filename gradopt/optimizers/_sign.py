"""Sign-based optimizers: sign_sgd, signum and lion.

Each takes the sign of a direction, so every coordinate moves by exactly the
learning rate (plus weight decay, for Lion)::

    sign_sgd = chain(scale_by_sign(), scale_by_learning_rate(lr))
    signum   = chain(ema(beta), scale_by_sign(), scale_by_learning_rate(lr))
    lion     = chain(scale_by_lion(b1, b2), scale_by_sign(),
                     add_decayed_weights(weight_decay), scale_by_learning_rate(lr))

All stages are elementwise: the chain runs as one fused expression per leaf.
"""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain
from gradopt.core._checks import check_decay, check_dtype, check_learning_rate, check_weight_decay
from gradopt.transforms._moments import ema
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._sign import scale_by_lion, scale_by_sign
from gradopt.transforms._weight_decay import add_decayed_weights


def sign_sgd(learning_rate=1e-3) -> GradientTransformation:
    r"""signSGD (Bernstein et al., 2018): step by the sign of the gradient.

    ::

        w = w - learning_rate * sign(g)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.

    Returns:
      ``chain(scale_by_sign(), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.sign_sgd(0.1)
      >>> updates, _ = opt.update({"w": jnp.array([3.0, -0.5, 0.0])}, opt.init(None))
      >>> updates["w"]
      Array([-0.1,  0.1, -0. ], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: neither PyTorch nor Keras has it;
      optax.sign_sgd is the same chain (its learning rate has no default).

    References:
      Bernstein, Wang, Azizzadenesheli & Anandkumar, signSGD: Compressed
      optimisation for non-convex problems, ICML 2018, arXiv:1802.04434.
    """
    check_learning_rate("gradopt.sign_sgd", learning_rate)
    return real_only(
        chain(scale_by_sign(), scale_by_learning_rate(learning_rate)),
        name="gradopt.sign_sgd",
        reason="the sign of a complex number is not a step direction",
    )


def signum(learning_rate=1e-3, beta=0.9, accumulator_dtype=None) -> GradientTransformation:
    r"""Signum (Bernstein et al., 2018): signSGD with momentum.

    ::

        m = beta * m + (1 - beta) * g
        w = w - learning_rate * sign(m)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      beta: the decay rate of the momentum, in [0, 1).
      accumulator_dtype: storage dtype of ``m`` (None: each parameter's dtype).

    Returns:
      ``chain(ema(beta), scale_by_sign(), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.signum(0.1)
      >>> state = opt.init({"w": jnp.zeros(2)})
      >>> updates, state = opt.update({"w": jnp.array([2.0, -1.0])}, state)
      >>> updates["w"]
      Array([-0.1,  0.1], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: neither PyTorch nor Keras has it;
      optax.signum is the same chain with the same argument names. The
      moving average needs no bias correction: a positive factor does not
      change a sign.

    References:
      Bernstein, Wang, Azizzadenesheli & Anandkumar, signSGD: Compressed
      optimisation for non-convex problems, ICML 2018, arXiv:1802.04434.
    """
    where = "gradopt.signum"
    check_learning_rate(where, learning_rate)
    check_decay(where, "beta", beta)
    check_dtype(where, accumulator_dtype, "accumulator_dtype")
    return real_only(
        chain(
            ema(beta, dtype=accumulator_dtype),
            scale_by_sign(),
            scale_by_learning_rate(learning_rate),
        ),
        name="gradopt.signum",
        reason="the sign of a complex number is not a step direction",
    )


def lion(
    learning_rate=1e-4,
    b1=0.9,
    b2=0.99,
    mu_dtype=None,
    weight_decay=1e-3,
    mask=None,
) -> GradientTransformation:
    r"""Lion, EvoLved Sign Momentum (Chen et al., 2023).

    ::

        c = b1 * m + (1 - b1) * g
        m = b2 * m + (1 - b2) * g
        w = w - learning_rate * (sign(c) + weight_decay * w)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule
        (1e-4; the paper advises 3 to 10 times smaller than AdamW's).
      b1: the weight of the momentum in the update's direction, in [0, 1).
      b2: the decay rate of the momentum, in [0, 1).
      mu_dtype: storage dtype of ``m`` (None: each parameter's dtype).
      weight_decay: decoupled decay coefficient, >= 0 (optax's 1e-3; the
        paper advises 3 to 10 times AdamW's).
      mask: which parameters to decay (see :func:`gradopt.add_decayed_weights`).

    Returns:
      ``chain(scale_by_lion(b1, b2), scale_by_sign(), add_decayed_weights(
      weight_decay, mask=mask), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.lion(0.1, weight_decay=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, _ = opt.update({"w": jnp.array([0.3, -4.0])}, opt.init(params), params)
      >>> updates["w"]
      Array([-0.1,  0.1], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.lion has these argument
      names and defaults (its learning rate has none) and the same rule.
      Keras' Lion has ``beta_1=0.9, beta_2=0.99`` and applies weight decay
      separately, as here. PyTorch has no Lion.

    References:
      Chen, Liang, Huang, Real, Wang, Liu, Pham, Dong, Luong, Hsieh, Lu & Le,
      Symbolic discovery of optimization algorithms, NeurIPS 2023,
      arXiv:2302.06675.
    """
    where = "gradopt.lion"
    check_learning_rate(where, learning_rate)
    check_decay(where, "b1", b1)
    check_decay(where, "b2", b2)
    check_dtype(where, mu_dtype, "mu_dtype")
    check_weight_decay(where, weight_decay)
    return real_only(
        chain(
            scale_by_lion(b1, b2, dtype=mu_dtype),
            scale_by_sign(),
            add_decayed_weights(weight_decay, mask=mask),
            scale_by_learning_rate(learning_rate),
        ),
        name="gradopt.lion",
        reason="the sign of a complex number is not a step direction",
    )
