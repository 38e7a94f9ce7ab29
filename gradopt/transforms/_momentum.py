"""Momentum: the PyTorch form (``trace``), the classic heavy-ball form (``heavy_ball``)
and the look-ahead point of Nesterov's method (``lookahead_params``).

The two forms of momentum differ in where the learning rate sits:

* PyTorch form: ``v = mu*v + g``, step ``-lr*v`` (learning rate outside).
* classic form: ``u = gamma*u + lr*g``, step ``-u`` (learning rate inside).

With a constant learning rate they give the same trajectory (``u = lr*v``);
when the learning rate changes, the classic form keeps the old rates in its
velocity while the PyTorch form rescales the whole velocity by the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, tree_map
from gradopt.core._checks import (
    check_dampening,
    check_dtype,
    check_flag,
    check_learning_rate,
    check_momentum,
    check_nesterov,
)
from gradopt.core._elementwise import Elementwise, elementwise
from gradopt.core._numerics import (
    cast,
    hyper,
    increment,
    one_minus,
    scalar_dtype,
    state_zeros,
    wider,
    zero_count,
)

PyTree = Any


# ----------------------------------------------------------------------------
# PyTorch form


class TraceState(NamedTuple):
    """State of :func:`trace`.

    Attributes:
      velocity: the momentum buffer ``v``.
      count: the number of updates seen (used by ``dampen_first_step=False``).
    """

    velocity: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _trace_init(params, *, momentum, dampening, nesterov, dampen_first_step, dtype):
    del momentum, dampening, nesterov, dampen_first_step
    return TraceState(velocity=state_zeros(params, dtype), count=zero_count())


def _trace_step(state, *, momentum, dampening, nesterov, dampen_first_step, dtype):
    del momentum, nesterov, dtype
    scale = one_minus(dampening, jnp.ones([], scalar_dtype()))
    if not dampen_first_step:
        scale = jnp.where(state.count == 0, 1.0, scale)
    return scale, {"count": increment(state.count)}


def _trace_leaf(x, fields, ctx, p, *, momentum, dampening, nesterov, dampen_first_step, dtype):
    del p, dampening, dampen_first_step, dtype
    mu = hyper(momentum, x)
    v = mu * fields["velocity"] + cast(ctx, x) * x
    return (x + mu * v if nesterov else v), {"velocity": v}


_TRACE = Elementwise("gradopt.trace", _trace_init, _trace_step, _trace_leaf, ("velocity",))


def trace(
    momentum,
    *,
    dampening=0.0,
    nesterov: bool = False,
    dampen_first_step: bool = True,
    dtype=None,
) -> GradientTransformation:
    """Momentum in the PyTorch form: ``v = momentum*v + (1-dampening)*g``; outputs ``v``.

    With ``nesterov=True`` outputs ``g + momentum*v``, Nesterov's accelerated
    gradient after the change of variables of Sutskever et al. (2013); see
    :func:`lookahead_params` for the look-ahead form. Follow with
    :func:`gradopt.scale_by_learning_rate` (the learning rate stays outside
    the velocity; :func:`heavy_ball` puts it inside).

    Args:
      momentum: ``mu`` in [0, 1).
      dampening: in [0, 1]; the gradient enters the velocity scaled by
        ``1 - dampening``.
      nesterov: Nesterov momentum (needs ``momentum > 0`` and, as in PyTorch,
        ``dampening == 0``).
      dampen_first_step: False reproduces torch.optim.SGD, whose first step
        sets ``v = g`` without dampening.
      dtype: storage dtype of ``v`` (None: each leaf's dtype).

    Returns:
      A gradient transformation with state :class:`TraceState`.

    References:
      Sutskever, Martens, Dahl & Hinton, On the importance of initialization
      and momentum in deep learning, ICML 2013.
    """
    where = "gradopt.trace"
    check_momentum(where, momentum)
    check_dampening(where, dampening)
    check_flag(where, "nesterov", nesterov)
    check_flag(where, "dampen_first_step", dampen_first_step)
    check_dtype(where, dtype)
    if nesterov:
        check_nesterov(where, momentum, dampening)
    return elementwise(
        _TRACE,
        momentum=momentum,
        dampening=dampening,
        nesterov=nesterov,
        dampen_first_step=dampen_first_step,
        dtype=dtype,
    )


# ----------------------------------------------------------------------------
# classic form


class HeavyBallState(NamedTuple):
    """State of :func:`heavy_ball`.

    Attributes:
      velocity: ``u``, which already contains the learning rate (the step is ``-u``).
      count: the number of updates seen (a schedule is evaluated at it).
    """

    velocity: PyTree
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _hb_init(params, *, learning_rate, momentum):
    del learning_rate, momentum
    return HeavyBallState(velocity=state_zeros(params, None), count=zero_count())


def _hb_step(state, *, learning_rate, momentum):
    del momentum
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    return lr, {"count": increment(state.count)}


def _hb_leaf(x, fields, ctx, p, *, learning_rate, momentum):
    del p, learning_rate
    u = hyper(momentum, x) * fields["velocity"] + hyper(ctx, x) * x
    return -u, {"velocity": u}


_HEAVY_BALL = Elementwise("gradopt.heavy_ball", _hb_init, _hb_step, _hb_leaf, ("velocity",))


def heavy_ball(learning_rate, momentum) -> GradientTransformation:
    """Classic momentum with the learning rate inside the velocity (Polyak, 1964).

    ``u = momentum*u + learning_rate*g``; outputs ``-u`` (so it already
    descends: do not follow it with a learning rate). To use Nesterov's
    method in this form, evaluate the gradient at :func:`lookahead_params`.

    Args:
      learning_rate: a non-negative number, a scalar array, or a schedule
        ``step -> value`` evaluated at the count of previous updates.
      momentum: ``gamma`` in [0, 1).

    Returns:
      A gradient transformation with state :class:`HeavyBallState`.

    References:
      Polyak, Some methods of speeding up the convergence of iteration
      methods, 1964. Goodfellow, Bengio & Courville, Deep Learning, 2016,
      Algorithm 8.2.
    """
    check_learning_rate("gradopt.heavy_ball", learning_rate)
    check_momentum("gradopt.heavy_ball", momentum)
    return elementwise(_HEAVY_BALL, learning_rate=learning_rate, momentum=momentum)


def _find_heavy_ball(state) -> HeavyBallState | None:
    if isinstance(state, HeavyBallState):
        return state
    if isinstance(state, Mapping):
        children = list(state.values())
    elif isinstance(state, (tuple, list)):
        children = list(state)
    else:
        return None
    for child in children:
        found = _find_heavy_ball(child)
        if found is not None:
            return found
    return None


def lookahead_params(params, opt_state, momentum):
    """The look-ahead point ``w + momentum*v = w - momentum*u`` of Nesterov's method.

    Uses the first :class:`HeavyBallState` found in ``opt_state`` (searching
    tuples, lists and dicts in order). Evaluate the gradient at the returned
    point and pass it to the optimizer's ``update`` to get Nesterov's
    accelerated gradient in its original form (Goodfellow, Bengio & Courville,
    Deep Learning, 2016, Algorithm 8.3).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> loss = lambda w: jnp.sum(w**2)
      >>> w = jnp.array([1.0, -1.0])
      >>> opt = gradopt.heavy_ball(0.1, 0.9)
      >>> state = opt.init(w)
      >>> for _ in range(2):  # Nesterov: the gradient at w + momentum * u
      ...     g = jax.grad(loss)(gradopt.lookahead_params(w, state, 0.9))
      ...     updates, state = opt.update(g, state)
      ...     w = gradopt.apply_updates(w, updates)
      >>> w
      Array([ 0.496..., -0.496...], dtype=float32)

    Args:
      params: the parameters ``w``.
      opt_state: a state that contains a :class:`HeavyBallState`.
      momentum: the momentum of that heavy-ball stage.

    Returns:
      A tree like ``params``, in each parameter's dtype.
    """
    found = _find_heavy_ball(opt_state)
    if found is None:
        raise ValueError(
            "gradopt.lookahead_params: opt_state contains no HeavyBallState. The look-ahead "
            "point needs the velocity of gradopt.heavy_ball; build the optimizer with "
            "heavy_ball (or sgd(..., classic_momentum=True)) and pass its state."
        )

    def point(w, u):
        w = jnp.asarray(w)
        c = wider(w.dtype, u.dtype)
        wc, uc = w.astype(c), u.astype(c)
        return (wc - hyper(momentum, uc) * uc).astype(w.dtype)

    return tree_map(point, params, found.velocity, what="params", rest_what="velocity")
