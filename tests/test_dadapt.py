"""Prodigy and D-Adaptation AdamW: NumPy float64 transcriptions of the rules (with
the parameters stored in float32, as in the run), to rtol 1e-5; and optax.contrib's
trajectories, to 1e-3 only: optax computes ``1 - beta2**t`` and ``1 - sqrt(beta2)``
in float32, which loses up to 4 of its 7 digits for beta2 = 0.999, and the
estimate of ``d``, a ratio of sums, carries that error into every later step."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import gradopt
from tests.match_optax import (
    assert_same_trajectory,
    grad_fn,
    mixed_tree,
    optax_trajectory,
    trajectory,
)


def _leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def _f32(a):
    """The parameters as float32 stores them: the first steps are of size d_0 = 1e-6,
    near float32's resolution at |w| ~ 1, and ``x0 - x`` feeds the estimate of d."""
    return a.astype(np.float32).astype(np.float64)


def _numpy_prodigy(steps, lr, b1, b2, b3, eps, d0, coef, wd, safeguard):
    tree = mixed_tree()
    treedef = jax.tree.structure(tree)
    x = _leaves(tree)
    x0 = [a.copy() for a in x]
    m, v, s = ([np.zeros_like(a) for a in x] for _ in range(3))
    d, r, out = d0, 0.0, []
    b3 = np.sqrt(b2) if b3 is None else b3
    for t in range(1, steps + 1):
        g = _leaves(grad_fn(jax.tree.unflatten(treedef, [a.astype(np.float32) for a in x])))
        dlr = d * lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        r = b3 * r + d / d0 * dlr * sum(
            np.sum(gi * (a0 - a)) for gi, a0, a in zip(g, x0, x, strict=False)
        )
        m = [b1 * mi + (1 - b1) * d * gi for mi, gi in zip(m, g, strict=False)]
        v = [b2 * vi + (1 - b2) * (d * gi) ** 2 for vi, gi in zip(v, g, strict=False)]
        w = d / d0 if safeguard else dlr / d0
        s = [b3 * si + w * d * gi for si, gi in zip(s, g, strict=False)]
        d_new = max(d, coef * r / sum(np.sum(np.abs(si)) for si in s))
        x = [
            _f32(a - dlr * (mi / (np.sqrt(vi) + d_new * eps) + wd * a))
            for a, mi, vi in zip(x, m, v, strict=False)
        ]
        d = d_new
        out.append(x)
    return out


def _numpy_dadapt(steps, lr, b1, b2, eps, d0, wd):
    tree = mixed_tree()
    treedef = jax.tree.structure(tree)
    x = _leaves(tree)
    m, v, s = ([np.zeros_like(a) for a in x] for _ in range(3))
    d, r, out, sb2 = d0, 0.0, [], np.sqrt(b2)
    for t in range(1, steps + 1):
        g = _leaves(grad_fn(jax.tree.unflatten(treedef, [a.astype(np.float32) for a in x])))
        dlr = d * lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        acc = sum(
            np.sum(gi * si / (np.sqrt(vi) + eps)) for gi, si, vi in zip(g, s, v, strict=False)
        )
        m = [b1 * mi + (1 - b1) * dlr * gi for mi, gi in zip(m, g, strict=False)]
        v = [b2 * vi + (1 - b2) * gi**2 for vi, gi in zip(v, g, strict=False)]
        s = [sb2 * si + (1 - sb2) * dlr * gi for si, gi in zip(s, g, strict=False)]
        r = sb2 * r + (1 - sb2) * dlr * acc
        d = max(d, r / ((1 - sb2) * sum(np.sum(np.abs(si)) for si in s)))
        x = [
            _f32(a - mi / (np.sqrt(vi) + eps) - wd * dlr * a)
            for a, mi, vi in zip(x, m, v, strict=False)
        ]
        out.append(x)
    return out


def _check_against(got, want):
    """rtol 1e-5 (atol 1e-5 for values near 0)."""
    for i, w in enumerate(want):
        for a, b in zip(jax.tree.leaves(got), w, strict=True):
            np.testing.assert_allclose(np.asarray(a[i]), b, rtol=1e-5, atol=1e-5, err_msg=f"{i}")


PRODIGY = {
    "defaults": {},
    "all-arguments": {"learning_rate": 0.5, "betas": (0.8, 0.99), "beta3": 0.95,
                      "weight_decay": 0.01, "estim_lr0": 1e-4, "estim_lr_coef": 0.8,
                      "safeguard_warmup": True},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PRODIGY))
def test_prodigy_is_the_rule_and_close_to_optax(case):
    kw = PRODIGY[case]
    got = trajectory(gradopt.prodigy(**kw), steps=100)
    full = {"learning_rate": 1.0, "betas": (0.9, 0.999), "beta3": None, "eps": 1e-8,
            "estim_lr0": 1e-6, "estim_lr_coef": 1.0, "weight_decay": 0.0,
            "safeguard_warmup": False, **kw}  # fmt: skip
    want = _numpy_prodigy(100, full["learning_rate"], *full["betas"], full["beta3"], full["eps"],
                          full["estim_lr0"], full["estim_lr_coef"], full["weight_decay"],
                          full["safeguard_warmup"])  # fmt: skip
    _check_against(got, want)
    assert_same_trajectory(
        got, optax_trajectory(optax.contrib.prodigy(**kw), steps=100), 1e-3, 1e-3
    )


DADAPT = {
    "defaults": {},
    "all-arguments": {"learning_rate": 0.5, "betas": (0.8, 0.99), "weight_decay": 0.01,
                      "estim_lr0": 1e-4},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(DADAPT))
def test_dadapt_adamw_is_the_rule_and_close_to_optax(case):
    kw = DADAPT[case]
    got = trajectory(gradopt.dadapt_adamw(**kw), steps=100)
    full = {"learning_rate": 1.0, "betas": (0.9, 0.999), "eps": 1e-8, "estim_lr0": 1e-6,
            "weight_decay": 0.0, **kw}  # fmt: skip
    want = _numpy_dadapt(100, full["learning_rate"], *full["betas"], full["eps"],
                         full["estim_lr0"], full["weight_decay"])  # fmt: skip
    _check_against(got, want)
    assert_same_trajectory(
        got, optax_trajectory(optax.contrib.dadapt_adamw(**kw), steps=100), 1e-3, 1e-3
    )


def test_zero_gradients_keep_the_estimate_finite():
    for opt in (gradopt.prodigy(), gradopt.dadapt_adamw()):
        w = {"w": np.ones(3, np.float32)}
        state = opt.init(w)
        for _ in range(3):
            u, state = opt.update({"w": np.zeros(3, np.float32)}, state, w)
        assert np.isfinite(float(state.estim_lr)) and np.all(np.isfinite(np.asarray(u["w"])))


def test_bad_arguments():
    with pytest.raises(ValueError, match="betas"):
        gradopt.prodigy(betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas"):
        gradopt.dadapt_adamw(betas=0.9)
    with pytest.raises(ValueError, match="estim_lr0"):
        gradopt.prodigy(estim_lr0=0.0)
