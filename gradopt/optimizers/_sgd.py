"""Named optimizers without moment estimates of g: sgd, adagrad, adadelta, rmsprop.

Each is a :func:`gradopt.chain` of public primitives that starts with the
coupled L2 stage ``add_decayed_weights(weight_decay)``, whatever the value of
``weight_decay`` (0.0 makes it a no-op), so that the state's structure never
depends on a hyperparameter's value.
"""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._checks import (
    check_dampening,
    check_decay,
    check_eps,
    check_flag,
    check_learning_rate,
    check_momentum,
    check_nesterov,
    check_weight_decay,
)
from gradopt.transforms._adaptive import scale_by_adadelta, scale_by_rms, scale_by_sum_of_squares
from gradopt.transforms._momentum import heavy_ball, trace
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._weight_decay import is_zero, with_l2


def sgd(
    learning_rate,
    momentum=None,
    *,
    dampening=0.0,
    nesterov: bool = False,
    weight_decay=0.0,
    classic_momentum: bool = False,
) -> GradientTransformation:
    r"""Stochastic gradient descent, with optional momentum, Nesterov and L2 decay.

    With ``g = grad + weight_decay * w`` (coupled L2) and momentum ``mu``::

        v = mu * v + (1 - dampening) * g          # v_0 = 0
        w = w - learning_rate * v                 # plain momentum
        w = w - learning_rate * (g + mu * v)      # nesterov=True

    With ``momentum=None`` (no velocity): ``w = w - learning_rate * g``. With
    ``classic_momentum=True`` the learning rate sits inside the velocity
    (Polyak's heavy ball): ``u = mu * u + learning_rate * g``, ``w = w - u``.
    The two forms coincide for a constant learning rate and differ when it
    changes over time (a schedule): the classic velocity keeps the old rates.

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      momentum: ``mu`` in [0, 1), or None (the default) for no velocity. A
        number, 0.0 included, keeps a velocity, so that the state has the same
        structure for every value (``inject_hyperparams``, checkpoints).
      dampening: in [0, 1]; PyTorch's dampening of the gradient entering the
        velocity (also applied on the first step, see the note).
      nesterov: Nesterov's accelerated gradient in the change-of-variables
        form of Sutskever et al. (2013); needs ``momentum > 0``.
      weight_decay: coupled L2 coefficient, >= 0.
      classic_momentum: learning rate inside the velocity (uses
        :func:`gradopt.heavy_ball`); for Nesterov in that form, evaluate the
        gradient at :func:`gradopt.lookahead_params`.

    Returns:
      A gradient transformation (a chain of ``add_decayed_weights``, ``trace``
      or ``heavy_ball``, and ``scale_by_learning_rate``).

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.sgd(0.1, momentum=0.9, nesterov=True)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.array([1.0, -1.0])}, state, params)
      >>> gradopt.apply_updates(params, updates)["w"]
      Array([ 0.81, -1.81], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ. torch.optim.SGD uses this form
      (learning rate outside the velocity) but its first step sets ``v = g``
      without dampening (``gradopt.trace(..., dampen_first_step=False)``).
      Keras' SGD keeps the learning rate inside the velocity
      (``v = momentum*v - lr*g``), the classic form, and has no dampening.
      optax.sgd matches this form without dampening; its weight decay is not
      part of ``sgd``.

    References:
      Robbins & Monro, A stochastic approximation method, 1951. Polyak, Some
      methods of speeding up the convergence of iteration methods, 1964.
      Sutskever, Martens, Dahl & Hinton, On the importance of initialization
      and momentum in deep learning, ICML 2013.
    """
    where = "gradopt.sgd"
    check_learning_rate(where, learning_rate)
    if momentum is not None:
        check_momentum(where, momentum)
    check_dampening(where, dampening)
    check_flag(where, "nesterov", nesterov)
    check_flag(where, "classic_momentum", classic_momentum)
    check_weight_decay(where, weight_decay)
    if nesterov:
        check_nesterov(where, 0.0 if momentum is None else momentum, dampening)
    if classic_momentum:
        if nesterov:
            raise ValueError(
                f"{where}: classic_momentum=True does not take nesterov=True. Evaluate the "
                "gradient at gradopt.lookahead_params(params, state, momentum) instead, or use "
                "classic_momentum=False with nesterov=True (the change-of-variables form)."
            )
        if not is_zero(dampening):
            raise ValueError(
                f"{where}: classic_momentum=True has no dampening, got dampening={dampening!r}. "
                "Use dampening=0.0."
            )
        return with_l2(weight_decay, heavy_ball(learning_rate, momentum or 0.0))
    if momentum is None:
        return with_l2(weight_decay, scale_by_learning_rate(learning_rate))
    return with_l2(
        weight_decay,
        trace(momentum, dampening=dampening, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


def adagrad(
    learning_rate=1e-2,
    initial_accumulator_value=0.0,
    eps=1e-10,
    *,
    eps_inside_sqrt: bool = False,
    weight_decay=0.0,
) -> GradientTransformation:
    r"""Adagrad (Duchi, Hazan & Singer, 2011), diagonal form.

    With ``g = grad + weight_decay * w``::

        G = G + g**2                               # G_0 = initial_accumulator_value
        w = w - learning_rate * g / (sqrt(G) + eps)

    (``eps_inside_sqrt=True``: ``g / sqrt(G + eps)``.)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule. The
        paper leaves it to the user; 1e-2 is PyTorch's default.
      initial_accumulator_value: ``G_0`` >= 0 (0 in the paper).
      eps: > 0, added outside the square root unless ``eps_inside_sqrt``.
      eps_inside_sqrt: put eps inside the square root.
      weight_decay: coupled L2 coefficient, >= 0.

    Returns:
      ``chain(scale_by_sum_of_squares(...), scale_by_learning_rate(learning_rate))``.

    Note:
      How PyTorch, Keras and optax differ. PyTorch: learning rate 1e-2, ``G_0 =
      0``, eps 1e-10 outside the root, plus an ``lr_decay``. Keras: learning
      rate 1e-3, ``G_0 = 0.1``, epsilon 1e-7 inside the root. optax:
      ``G_0 = 0.1``, eps 1e-7 inside the root.

    References:
      Duchi, Hazan & Singer, Adaptive subgradient methods for online learning
      and stochastic optimization, JMLR 2011.
    """
    where = "gradopt.adagrad"
    check_learning_rate(where, learning_rate)
    check_weight_decay(where, weight_decay)
    return with_l2(
        weight_decay,
        scale_by_sum_of_squares(
            eps=eps,
            initial_accumulator_value=initial_accumulator_value,
            eps_inside_sqrt=eps_inside_sqrt,
        ),
        scale_by_learning_rate(learning_rate),
    )


def adadelta(learning_rate=1.0, rho=0.95, eps=1e-6, *, weight_decay=0.0) -> GradientTransformation:
    r"""Adadelta (Zeiler, 2012).

    With ``g = grad + weight_decay * w``::

        E[g^2]  = rho * E[g^2] + (1 - rho) * g**2
        dx      = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g
        E[dx^2] = rho * E[dx^2] + (1 - rho) * dx**2
        w       = w - learning_rate * dx

    The paper has no learning rate (it is 1.0 here); its defaults are
    ``rho=0.95`` and ``eps=1e-6``. With these defaults it descends.

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule (1.0).
      rho: decay rate in [0, 1).
      eps: > 0.
      weight_decay: coupled L2 coefficient, >= 0.

    Returns:
      ``chain(scale_by_adadelta(rho, eps=eps), scale_by_learning_rate(learning_rate))``.

    Note:
      How PyTorch, Keras and optax differ. PyTorch: learning rate 1.0, rho 0.9,
      eps 1e-6. Keras: learning rate 1e-3 (so a thousand times smaller steps
      than the paper), rho 0.95, epsilon 1e-7. optax 0.2.8: ``learning_rate``
      defaults to None, rho 0.9, eps 1e-6; with no learning rate it applies no
      sign flip, so ``optax.adadelta()`` with its defaults ascends the loss.

    References:
      Zeiler, ADADELTA: An adaptive learning rate method, 2012, arXiv:1212.5701.
    """
    where = "gradopt.adadelta"
    check_learning_rate(where, learning_rate)
    check_weight_decay(where, weight_decay)
    return with_l2(
        weight_decay, scale_by_adadelta(rho, eps=eps), scale_by_learning_rate(learning_rate)
    )


def rmsprop(
    learning_rate,
    decay=0.9,
    eps=1e-8,
    *,
    centered: bool = False,
    momentum=None,
    nesterov: bool = False,
    eps_inside_sqrt: bool = False,
    weight_decay=0.0,
) -> GradientTransformation:
    r"""RMSprop (Tieleman & Hinton, 2012), optionally centred (Graves, 2013), with momentum.

    With ``g = grad + weight_decay * w``::

        nu = decay * nu + (1 - decay) * g**2
        mean = decay * mean + (1 - decay) * g     # centered=True: nu -> nu - mean**2
        s = g / (sqrt(nu) + eps)                   # eps_inside_sqrt: g / sqrt(nu + eps)
        v = momentum * v + s                       # momentum > 0
        w = w - learning_rate * v                  # (w = w - learning_rate * s without momentum)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule (the
        lecture suggests 1e-3).
      decay: decay rate of the moving averages, in [0, 1) (0.9 in the lecture).
      eps: > 0.
      centered: divide by an estimate of the standard deviation instead of
        the root mean square.
      momentum: in [0, 1), or None (the default) for no velocity; the
        learning rate is outside the velocity.
      nesterov: Nesterov momentum (needs ``momentum > 0``).
      eps_inside_sqrt: put eps inside the square root.
      weight_decay: coupled L2 coefficient, >= 0.

    Returns:
      ``chain(scale_by_rms(...), [trace(momentum),] scale_by_learning_rate(...))``.

    Note:
      The centred variance ``nu - mean**2`` is clamped at zero so that
      rounding cannot make its square root NaN. How PyTorch, Keras and optax
      differ: PyTorch calls the decay ``alpha`` (default 0.99), learning rate
      1e-2, eps 1e-8 outside the root, learning rate outside the momentum
      buffer. Keras: rho 0.9, learning rate 1e-3, epsilon 1e-7 inside the
      root, learning rate inside the momentum velocity. optax: decay 0.9,
      eps 1e-8 inside the root (``eps_in_sqrt=True``), learning rate inside
      the momentum (its ``trace`` follows the learning rate).

    References:
      Tieleman & Hinton, Lecture 6.5 - RMSProp, COURSERA: Neural Networks for
      Machine Learning, 2012. Graves, Generating sequences with recurrent
      neural networks, 2013, arXiv:1308.0850.
    """
    where = "gradopt.rmsprop"
    check_learning_rate(where, learning_rate)
    check_decay(where, "decay", decay)
    check_eps(where, eps)
    if momentum is not None:
        check_momentum(where, momentum)
    check_flag(where, "nesterov", nesterov)
    check_weight_decay(where, weight_decay)
    if nesterov:
        check_nesterov(where, 0.0 if momentum is None else momentum, 0.0)
    stages = [scale_by_rms(decay, eps=eps, eps_inside_sqrt=eps_inside_sqrt, centered=centered)]
    if momentum is not None:
        stages.append(trace(momentum, nesterov=nesterov))
    stages.append(scale_by_learning_rate(learning_rate))
    return with_l2(weight_decay, *stages)
