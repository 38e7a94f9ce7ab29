"""NumPy float64 transcriptions of the papers' rules for issue 17's optimizers.

Written from the papers' algorithms, not from gradopt or optax. Each rule is
``init(params) -> state`` and ``step(grads, state, params) -> (updates, state)``
on dicts of NumPy arrays (one leaf at a time; trees are flattened by the tests).
"""

from __future__ import annotations

import numpy as np


def adan(lr, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=1e-8, weight_decay=0.0):
    """Xie et al. (2022), Algorithm 1 with the authors' bias corrections, in
    decay-rate form (``b = 1 - beta``); decoupled weight decay."""

    def init(w):
        z = np.zeros_like(w)
        return {"m": z, "v": z, "n": z, "prev": z, "t": 0}

    def step(g, s, w):
        t = s["t"] + 1
        d = g - s["prev"] if t > 1 else np.zeros_like(g)
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * d
        n = b3 * s["n"] + (1 - b3) * (g + b2 * d) ** 2
        m_hat, v_hat, n_hat = m / (1 - b1**t), v / (1 - b2**t), n / (1 - b3**t)
        u = (m_hat + b2 * v_hat) / (np.sqrt(n_hat + eps_root) + eps)
        return -lr * (u + weight_decay * w), {"m": m, "v": v, "n": n, "prev": g, "t": t}

    return init, step


def radam(lr, b1=0.9, b2=0.999, eps=1e-8, threshold=5.0):
    """Liu et al. (2020), Algorithm 2, with the rectification from ``rho_t >= threshold``."""
    rho_inf = 2 / (1 - b2) - 1

    def init(w):
        return {"m": np.zeros_like(w), "v": np.zeros_like(w), "t": 0}

    def step(g, s, w):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho >= threshold:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            u = r * m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
        else:
            u = m_hat
        return -lr * u, {"m": m, "v": v, "t": t}

    return init, step


def adam(lr, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma & Ba (2015), Algorithm 1; returns the step to add."""

    def init(w):
        return {"m": np.zeros_like(w), "v": np.zeros_like(w), "t": 0}

    def step(g, s, w):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g**2
        u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        return -lr * u, {"m": m, "v": v, "t": t}

    return init, step


def lion(lr, b1=0.9, b2=0.99):
    """Chen et al. (2023), Program 1, without weight decay."""

    def init(w):
        return {"m": np.zeros_like(w)}

    def step(g, s, w):
        c = b1 * s["m"] + (1 - b1) * g
        return -lr * np.sign(c), {"m": b2 * s["m"] + (1 - b2) * g}

    return init, step


def cautious(rule):
    """Liang et al. (2024): the step kept where it opposes the gradient,
    rescaled by ``size / (kept + 1)`` per tensor."""
    init, inner = rule

    def step(g, s, w):
        u, s = inner(g, s, w)
        phi = (u * g < 0).astype(np.float64)
        return u * phi * (u.size / (phi.sum() + 1)), s

    return init, step
