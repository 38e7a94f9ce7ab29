"""Every named optimizer against its NumPy float64 transcription (tests/references.py).

120 steps on a nested tree, with gradients from a fixed function of the
parameters (a quadratic plus sine terms), run in one jitted ``lax.scan``; the
whole trajectory is compared, in float32 and in float64.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from tests import references as ref

STEPS = 120
SHAPES = {"w": (3, 4), "b": (4,), "nested": {"k": (2, 2, 2)}}


def initial_params() -> dict:
    rng = np.random.default_rng(0)
    # Start 1 to 2.5 away from the minimiser (w ~ 0.29 in every coordinate): adaptive
    # methods take steps of ~learning_rate whatever the gradient's size, so near the
    # minimiser they amplify rounding; the learning rates below keep them in transit.
    return ref.tree_map(
        lambda shape: 0.29 + rng.choice([-1.0, 1.0], size=shape) * rng.uniform(1.0, 2.5, shape),
        SHAPES,
    )


def grad_leaf_np(w):
    return 0.8 * (w - 0.5) + 0.3 * np.sin(2.0 * w)


def grad_leaf_jax(w):
    return 0.8 * (w - 0.5) + 0.3 * jnp.sin(2.0 * w)


def grad_np(tree):
    return ref.tree_map(grad_leaf_np, tree)


def schedule_np(base):
    return lambda count: base / (1.0 + 0.02 * count)


def schedule_jax(base):
    return lambda count: base / (1.0 + 0.02 * count.astype(jnp.result_type(float)))


# (id, gradopt optimizer, reference rule, learning rate or ("schedule", base)).
CASES = [
    ("sgd", lambda lr: gradopt.sgd(lr), lambda lr: ref.sgd(lr), 0.1),
    ("sgd-momentum", lambda lr: gradopt.sgd(lr, 0.9), lambda lr: ref.sgd(lr, 0.9), 0.05),
    (
        "sgd-nesterov",
        lambda lr: gradopt.sgd(lr, 0.9, nesterov=True),
        lambda lr: ref.sgd(lr, 0.9, nesterov=True),
        0.05,
    ),
    (
        "sgd-dampening-wd",
        lambda lr: gradopt.sgd(lr, 0.8, dampening=0.3, weight_decay=0.05),
        lambda lr: ref.sgd(lr, 0.8, dampening=0.3, weight_decay=0.05),
        0.05,
    ),
    (
        "sgd-classic",
        lambda lr: gradopt.sgd(lr, 0.9, classic_momentum=True),
        lambda lr: ref.sgd(lr, 0.9, classic=True),
        0.05,
    ),
    (
        "sgd-momentum-schedule",
        lambda lr: gradopt.sgd(lr, 0.9),
        lambda lr: ref.sgd(lr, 0.9),
        ("schedule", 0.05),
    ),
    (
        "sgd-classic-schedule",
        lambda lr: gradopt.sgd(lr, 0.9, classic_momentum=True),
        lambda lr: ref.sgd(lr, 0.9, classic=True),
        ("schedule", 0.05),
    ),
    (
        "trace-undampened-first-step",  # torch.optim.SGD's first step: v = g
        lambda lr: gradopt.chain(
            gradopt.trace(0.8, dampening=0.3, dampen_first_step=False),
            gradopt.scale_by_learning_rate(lr),
        ),
        lambda lr: ref.sgd(lr, 0.8, dampening=0.3, dampen_first_step=False),
        0.05,
    ),
    ("adagrad", lambda lr: gradopt.adagrad(lr), lambda lr: ref.adagrad(lr), 0.1),
    (
        "adagrad-eps-inside-init",
        lambda lr: gradopt.adagrad(lr, 0.1, 1e-7, eps_inside_sqrt=True, weight_decay=0.01),
        lambda lr: ref.adagrad(lr, 0.1, 1e-7, eps_inside_sqrt=True, weight_decay=0.01),
        0.1,
    ),
    ("adadelta-defaults", lambda lr: gradopt.adadelta(), lambda lr: ref.adadelta(), 1.0),
    (
        "adadelta-rho-eps",
        lambda lr: gradopt.adadelta(lr, 0.9, 1e-4),
        lambda lr: ref.adadelta(lr, 0.9, 1e-4),
        0.5,
    ),
    ("rmsprop", lambda lr: gradopt.rmsprop(lr), lambda lr: ref.rmsprop(lr), 0.005),
    (
        "rmsprop-centered",
        lambda lr: gradopt.rmsprop(lr, 0.95, centered=True),
        lambda lr: ref.rmsprop(lr, 0.95, centered=True),
        0.005,
    ),
    (
        "rmsprop-momentum-eps-inside",
        lambda lr: gradopt.rmsprop(lr, 0.9, 1e-6, momentum=0.9, eps_inside_sqrt=True),
        lambda lr: ref.rmsprop(lr, 0.9, 1e-6, momentum=0.9, eps_inside_sqrt=True),
        0.0008,
    ),
    (
        "rmsprop-centered-nesterov-wd",
        lambda lr: gradopt.rmsprop(
            lr, 0.9, centered=True, momentum=0.5, nesterov=True, weight_decay=0.01
        ),
        lambda lr: ref.rmsprop(
            lr, 0.9, centered=True, momentum=0.5, nesterov=True, weight_decay=0.01
        ),
        0.005,
    ),
    ("adam", lambda lr: gradopt.adam(lr), lambda lr: ref.adam(lr), 0.005),
    (
        "adam-l2",
        lambda lr: gradopt.adam(lr, 0.8, 0.99, 1e-6, weight_decay=0.1),
        lambda lr: ref.adam(lr, 0.8, 0.99, 1e-6, weight_decay=0.1),
        0.005,
    ),
    ("adam-schedule", lambda lr: gradopt.adam(lr), lambda lr: ref.adam(lr), ("schedule", 0.008)),
    (
        "adamw",
        lambda lr: gradopt.adamw(lr, weight_decay=0.1),
        lambda lr: ref.adam(lr, weight_decay=0.1, decoupled=True),
        0.005,
    ),
    ("amsgrad", lambda lr: gradopt.amsgrad(lr), lambda lr: ref.adam(lr, amsgrad=True), 0.005),
    ("adamax", lambda lr: gradopt.adamax(lr), lambda lr: ref.adamax(lr), 0.005),
    (
        "adamax-eps-inside-max",
        lambda lr: gradopt.adamax(lr, eps=1e-3, eps_inside_max=True),
        lambda lr: ref.adamax(lr, eps=1e-3, eps_inside_max=True),
        0.005,
    ),
    ("nadam", lambda lr: gradopt.nadam(lr), lambda lr: ref.nadam(lr), 0.005),
    (
        "nadam-constant-momentum",
        lambda lr: gradopt.nadam(lr, momentum_decay=None),
        lambda lr: ref.nadam(lr, momentum_decay=None),
        0.005,
    ),
    ("nadam-schedule", lambda lr: gradopt.nadam(lr), lambda lr: ref.nadam(lr), ("schedule", 0.008)),
]


def gradopt_trajectory(opt, params, steps):
    """The parameters after each of ``steps`` updates, from one jitted scan."""

    def body(carry, _):
        p, s = carry
        g = jax.tree.map(grad_leaf_jax, p)
        u, s = opt.update(g, s, p)
        p = gradopt.apply_updates(p, u)
        return (p, s), p

    @jax.jit
    def run(p):
        _, trajectory = jax.lax.scan(body, (p, opt.init(p)), None, length=steps)
        return trajectory

    return run(params)


def compare(case, dtype, rtol, atol):
    _, make_opt, make_ref, lr = case
    if isinstance(lr, tuple):  # ("schedule", base)
        jax_lr, np_lr = schedule_jax(lr[1]), schedule_np(lr[1])
    else:
        jax_lr, np_lr = lr, lr
    params = initial_params()
    want = ref.run(make_ref(np_lr), params, grad_np, STEPS)
    want = jax.tree.map(lambda *xs: np.stack(xs), *want)
    got = gradopt_trajectory(
        make_opt(jax_lr), jax.tree.map(lambda x: jnp.asarray(x, dtype), params), STEPS
    )
    chex.assert_trees_all_equal_dtypes(got, jax.tree.map(lambda x: jnp.zeros((), dtype), want))
    chex.assert_tree_all_finite(got)
    # the parameters must actually move, or the comparison proves little
    assert np.max(np.abs(want["w"][-1] - params["w"])) > 1e-2
    chex.assert_trees_all_close(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_float32_matches_reference(case):
    # float32 rounding (~6e-8 per operation) accumulated over 120 steps; the largest
    # error measured is ~1.3e-5 relative, in centred RMSprop (nu - mean**2 cancels).
    compare(case, jnp.float32, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_float64_matches_reference(case, x64):
    del x64
    compare(case, jnp.float64, rtol=1e-10, atol=1e-12)


def test_reference_detects_a_wrong_rule():
    """The comparison can fail: Adam against AMSGrad's reference differs."""
    case = (
        "adam-vs-amsgrad",
        lambda lr: gradopt.adam(lr),
        lambda lr: ref.adam(lr, amsgrad=True),
        0.02,
    )
    with pytest.raises(AssertionError):
        compare(case, jnp.float32, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradopt.sgd(0.1, 0.9, nesterov=True),
        lambda: gradopt.rmsprop(0.01, centered=True, momentum=0.5),
        lambda: gradopt.adam(0.01),
        lambda: gradopt.amsgrad(0.01),
        lambda: gradopt.adamax(0.01),
        lambda: gradopt.nadam(0.01),
        lambda: gradopt.adadelta(),
        lambda: gradopt.adagrad(0.1),
    ],
)
def test_tuple_trees_match_dict_trees(make):
    """A tree of pairs (a tuple of two leaves) is not mistaken for per-leaf results."""
    params = initial_params()
    as_dict = {
        "a": jnp.asarray(params["w"], jnp.float32),
        "b": jnp.asarray(params["b"], jnp.float32),
    }
    as_tuple = (as_dict["a"], as_dict["b"])
    opt = make()
    out = []
    for tree in (as_dict, as_tuple):
        state = opt.init(tree)
        for _ in range(3):
            updates, state = opt.update(jax.tree.map(grad_leaf_jax, tree), state, tree)
            tree = gradopt.apply_updates(tree, updates)
        out.append(tree)
    chex.assert_trees_all_close((out[0]["a"], out[0]["b"]), out[1], rtol=1e-6)
