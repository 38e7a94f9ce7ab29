"""NumPy float64 transcriptions of the update rules, written from the papers' formulas.

Independent of gradopt: each rule is a pair ``init(w) -> state`` and
``step(w, g, state, t) -> (w_new, state)`` on one float64 array (``t`` is the
1-based step), and :func:`run` applies it leaf by leaf to a nested dict of
arrays. A learning rate may be a number or a schedule ``count -> value``
evaluated at the 0-based count ``t - 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class Rule(NamedTuple):
    init: Callable[[np.ndarray], dict]
    step: Callable[[np.ndarray, np.ndarray, dict, int], tuple[np.ndarray, dict]]


def _lr(learning_rate, t):
    return float(learning_rate(t - 1)) if callable(learning_rate) else learning_rate


def _zeros(w, *names):
    return {name: np.zeros_like(w) for name in names}


# ----------------------------------------------------------------------------
# tree driver


def tree_map(fn, tree, *rest):
    if isinstance(tree, dict):
        return {k: tree_map(fn, tree[k], *(r[k] for r in rest)) for k in tree}
    return fn(tree, *rest)


def run(rule: Rule, params: dict, grad_fn: Callable[[dict], dict], steps: int) -> list[dict]:
    """The trajectory ``[w_1, ..., w_steps]`` (float64) of ``rule`` on ``params``.

    ``grad_fn(params) -> grads`` is a NumPy function of the whole tree.
    """
    w = tree_map(lambda x: np.asarray(x, np.float64), params)
    state = tree_map(rule.init, w)
    trajectory = []
    for t in range(1, steps + 1):
        g = tree_map(lambda x: np.asarray(x, np.float64), grad_fn(w))
        pairs = tree_map(lambda wi, gi, si, t=t: rule.step(wi, gi, si, t), w, g, state)
        w = _pick(pairs, 0)
        state = _pick(pairs, 1)
        trajectory.append(w)
    return trajectory


def _pick(pairs, i):
    if isinstance(pairs, dict):
        return {k: _pick(v, i) for k, v in pairs.items()}
    return pairs[i]


def _state(**arrays):
    return dict(arrays)


# ----------------------------------------------------------------------------
# SGD and momentum


def sgd(
    learning_rate,
    momentum=0.0,
    dampening=0.0,
    nesterov=False,
    weight_decay=0.0,
    classic=False,
    dampen_first_step=True,
) -> Rule:
    """``v = mu v + (1 - dampening) g``; ``w -= lr v`` (or ``lr (g + mu v)``).

    ``classic``: ``u = mu u + lr g``; ``w -= u`` (Polyak's heavy ball).
    """

    def init(w):
        return _state(v=np.zeros_like(w))

    def step(w, g, s, t):
        lr = _lr(learning_rate, t)
        g = g + weight_decay * w
        if classic:
            u = momentum * s["v"] + lr * g
            return w - u, _state(v=u)
        if momentum == 0:
            return w - lr * g, s
        scale = 1.0 if (t == 1 and not dampen_first_step) else 1.0 - dampening
        v = momentum * s["v"] + scale * g
        d = g + momentum * v if nesterov else v
        return w - lr * d, _state(v=v)

    return Rule(init, step)


def nesterov_lookahead(learning_rate, momentum, grad_leaf: Callable[[np.ndarray], np.ndarray]):
    """Nesterov's method in its original form (Deep Learning book, Algorithm 8.3).

    ``u = mu u + lr grad(w - mu u)``; ``w -= u``. The gradient is evaluated at
    the look-ahead point, so this rule takes the per-leaf gradient function and
    ignores the ``g`` it is given.
    """

    def init(w):
        return _state(u=np.zeros_like(w))

    def step(w, g, s, t):
        del g
        lr = _lr(learning_rate, t)
        u = momentum * s["u"] + lr * grad_leaf(w - momentum * s["u"])
        return w - u, _state(u=u)

    return Rule(init, step)


# ----------------------------------------------------------------------------
# Adagrad, Adadelta, RMSprop


def adagrad(
    learning_rate, initial_accumulator_value=0.0, eps=1e-10, eps_inside_sqrt=False, weight_decay=0.0
) -> Rule:
    """``G += g^2``; ``w -= lr g / (sqrt(G) + eps)`` (Duchi et al., 2011)."""

    def init(w):
        return _state(G=np.full_like(w, initial_accumulator_value))

    def step(w, g, s, t):
        g = g + weight_decay * w
        G = s["G"] + g * g
        denom = np.sqrt(G + eps) if eps_inside_sqrt else np.sqrt(G) + eps
        return w - _lr(learning_rate, t) * g / denom, _state(G=G)

    return Rule(init, step)


def adadelta(learning_rate=1.0, rho=0.95, eps=1e-6, weight_decay=0.0) -> Rule:
    """Zeiler (2012), Algorithm 1, with an outer learning rate."""

    def init(w):
        return _state(Eg=np.zeros_like(w), Edx=np.zeros_like(w))

    def step(w, g, s, t):
        g = g + weight_decay * w
        Eg = rho * s["Eg"] + (1 - rho) * g * g
        dx = -np.sqrt(s["Edx"] + eps) / np.sqrt(Eg + eps) * g
        Edx = rho * s["Edx"] + (1 - rho) * dx * dx
        return w + _lr(learning_rate, t) * dx, _state(Eg=Eg, Edx=Edx)

    return Rule(init, step)


def rmsprop(
    learning_rate,
    decay=0.9,
    eps=1e-8,
    centered=False,
    momentum=0.0,
    nesterov=False,
    eps_inside_sqrt=False,
    weight_decay=0.0,
) -> Rule:
    """Tieleman & Hinton (2012); centred as in Graves (2013); momentum outside the lr."""

    def init(w):
        return _state(nu=np.zeros_like(w), mean=np.zeros_like(w), v=np.zeros_like(w))

    def step(w, g, s, t):
        g = g + weight_decay * w
        nu = decay * s["nu"] + (1 - decay) * g * g
        mean = decay * s["mean"] + (1 - decay) * g
        var = np.maximum(nu - mean * mean, 0.0) if centered else nu
        denom = np.sqrt(var + eps) if eps_inside_sqrt else np.sqrt(var) + eps
        r = g / denom
        v = momentum * s["v"] + r
        d = (r + momentum * v if nesterov else v) if momentum else r
        return w - _lr(learning_rate, t) * d, _state(nu=nu, mean=mean, v=v)

    return Rule(init, step)


# ----------------------------------------------------------------------------
# the Adam family


def adam(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    decoupled=False,
    amsgrad=False,
) -> Rule:
    """Kingma & Ba (2015), Algorithm 1; AdamW (Loshchilov & Hutter, 2019) with
    ``decoupled``; AMSGrad (Reddi et al., 2018) with ``amsgrad``, debiasing the
    running maximum of ``v``."""

    def init(w):
        return _state(m=np.zeros_like(w), v=np.zeros_like(w), vmax=np.zeros_like(w))

    def step(w, g, s, t):
        lr = _lr(learning_rate, t)
        if not decoupled:
            g = g + weight_decay * w
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        vmax = np.maximum(s["vmax"], v)
        m_hat = m / (1 - b1**t)
        v_hat = (vmax if amsgrad else v) / (1 - b2**t)
        d = m_hat / (np.sqrt(v_hat) + eps)
        if decoupled:
            d = d + weight_decay * w
        return w - lr * d, _state(m=m, v=v, vmax=vmax)

    return Rule(init, step)


def adamax(
    learning_rate=2e-3, b1=0.9, b2=0.999, eps=1e-8, eps_inside_max=False, weight_decay=0.0
) -> Rule:
    """Kingma & Ba (2015), Algorithm 2, with eps added to ``u`` (or inside the max)."""

    def init(w):
        return _state(m=np.zeros_like(w), u=np.zeros_like(w))

    def step(w, g, s, t):
        g = g + weight_decay * w
        m = b1 * s["m"] + (1 - b1) * g
        if eps_inside_max:
            u = np.maximum(b2 * s["u"], np.abs(g) + eps)
            denom = u
        else:
            u = np.maximum(b2 * s["u"], np.abs(g))
            denom = u + eps
        step_size = _lr(learning_rate, t) / (1 - b1**t)
        return w - step_size * m / denom, _state(m=m, u=u)

    return Rule(init, step)


def nadam(
    learning_rate=2e-3, b1=0.9, b2=0.999, eps=1e-8, momentum_decay=0.004, weight_decay=0.0
) -> Rule:
    """Dozat (2016) with the momentum schedule ``mu_t = b1 (1 - 0.5 * 0.96^(t psi))``.

    ``momentum_decay=None``: constant ``mu_t = b1``.
    """

    def mu(t):
        if momentum_decay is None:
            return b1
        return b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))

    def init(w):
        return _state(m=np.zeros_like(w), v=np.zeros_like(w), prod=np.ones(()))

    def step(w, g, s, t):
        g = g + weight_decay * w
        prod_t = s["prod"] * mu(t)
        prod_next = prod_t * mu(t + 1)
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        m_bar = mu(t + 1) * m / (1 - prod_next) + (1 - mu(t)) * g / (1 - prod_t)
        v_hat = v / (1 - b2**t)
        w = w - _lr(learning_rate, t) * m_bar / (np.sqrt(v_hat) + eps)
        return w, _state(m=m, v=v, prod=prod_t)

    return Rule(init, step)


RULES: dict[str, Any] = {
    "sgd": sgd,
    "adagrad": adagrad,
    "adadelta": adadelta,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamax": adamax,
    "nadam": nadam,
}
