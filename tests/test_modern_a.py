"""The optimizers of issue 17, part A, against optax 0.2.8 and NumPy transcriptions.

Each case runs ``gradopt.X(**kw)`` and ``optax.X(**kw)`` for 200 steps on a tree
of mixed shapes (a scalar, a vector, a matrix and a 3-D leaf) with gradients
from a fixed function of the parameters, in float32, and compares the whole
trajectory of parameters (rtol 1e-5). Where gradopt follows the paper instead of
optax, the case compares with a NumPy float64 transcription of the paper's rule
(``tests/references_modern.py``). optax runs under standard dtype promotion
(it is not written for the strict promotion the test suite turns on).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradopt
from tests import references_modern as ref

STEPS = 200
SHAPES = {"s": (), "v": (5,), "m": (3, 4), "t": {"k": (2, 3, 2)}}


def initial_params():
    rng = np.random.default_rng(0)
    leaves, treedef = jax.tree.flatten(SHAPES, is_leaf=lambda x: isinstance(x, tuple))
    values = [0.3 + rng.choice([-1.0, 1.0], size=s) * rng.uniform(0.5, 2.0, s) for s in leaves]
    return jax.tree.unflatten(treedef, values)


def grad_leaf(w, xp=jnp):
    return 0.8 * (w - 0.5) + 0.3 * xp.sin(2.0 * w)


def loss_leaf(w, xp=jnp):
    return 0.4 * (w - 0.5) ** 2 - 0.15 * xp.cos(2.0 * w)


def value_of(params, xp=jnp):
    return sum(xp.sum(loss_leaf(w, xp)) for w in jax.tree.leaves(params))


def trajectory(tx, steps=STEPS, with_value=False, dtype=jnp.float32):
    """Parameters after every step, of ``tx`` driven by ``grad_leaf``; jitted scan."""
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype), initial_params())

    def step(carry, _):
        p, s = carry
        g = jax.tree.map(grad_leaf, p)
        extra = {"value": value_of(p)} if with_value else {}
        u, s = tx.update(g, s, p, **extra)
        p = jax.tree.map(lambda a, b: (a + b).astype(a.dtype), p, u)
        return (p, s), p

    @jax.jit
    def run(p):
        return jax.lax.scan(step, (p, tx.init(p)), None, length=steps)[1]

    return run(params)


def optax_trajectory(tx, **kw):
    with jax.numpy_dtype_promotion("standard"):
        return trajectory(tx, **kw)


def assert_close(got, want, rtol=1e-5):
    """Relative error at most ``rtol``, measured on each leaf's scale (its largest
    magnitude over the trajectory): a coordinate crossing zero has no relative
    error of its own, and float32 rounding drifts by ~1e-6 of the scale."""
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        b = np.asarray(b, np.float64)
        atol = rtol * float(np.max(np.abs(b)))
        np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=rtol, atol=atol)


def _b3_schedule(count):
    return 0.999 - 0.1 * jnp.exp(-0.02 * count.astype(jnp.float32))


def _alpha_schedule(count):
    return jnp.minimum(count.astype(jnp.float32) / 50.0, 1.0) * 5.0


def _first_leaves(params):
    """A module-level mask: the first two leaves in tree order."""
    leaves, treedef = jax.tree.flatten(params)
    return jax.tree.unflatten(treedef, [i < 2 for i in range(len(leaves))])


def _last_leaves(params):
    leaves, treedef = jax.tree.flatten(params)
    return jax.tree.unflatten(treedef, [i >= 2 for i in range(len(leaves))])


# (id, gradopt factory, optax factory, kwargs): gradopt.X(**kw) == optax.X(**kw)
OPTAX_CASES: list = [
    ("sign_sgd", lambda **k: gradopt.sign_sgd(**k), optax.sign_sgd, {"learning_rate": 1e-3}),
    ("signum", gradopt.signum, optax.signum, {"learning_rate": 1e-3, "beta": 0.8}),
    ("lion", gradopt.lion, optax.lion, {"learning_rate": 1e-3}),
    (
        "lion-b",
        gradopt.lion,
        optax.lion,
        {"learning_rate": 0.003, "b1": 0.8, "b2": 0.95, "weight_decay": 0.1},
    ),
    ("radam", gradopt.radam, optax.radam, {"learning_rate": 1e-3, "b2": 0.9}),
    (
        "radam-nesterov",
        gradopt.radam,
        optax.radam,
        {"learning_rate": 1e-3, "b2": 0.95, "threshold": 4.5, "eps_root": 1e-6, "nesterov": True},
    ),
    ("adabelief", gradopt.adabelief, optax.adabelief, {"learning_rate": 1e-3}),
    (
        "adabelief-nesterov",
        gradopt.adabelief,
        optax.adabelief,
        {"learning_rate": 1e-3, "b1": 0.8, "eps": 1e-8, "nesterov": True},
    ),
    ("yogi", gradopt.yogi, optax.yogi, {"learning_rate": 1e-3}),
    ("yogi-b", gradopt.yogi, optax.yogi, {"learning_rate": 3e-3, "b2": 0.9, "eps": 1e-4}),
    ("nadamw", gradopt.nadamw, optax.nadamw, {"learning_rate": 1e-3}),
    (
        "nadamw-wd",
        gradopt.nadamw,
        optax.nadamw,
        {"learning_rate": 1e-3, "b1": 0.8, "weight_decay": 0.1},
    ),
    ("adamaxw", gradopt.adamaxw, optax.adamaxw, {"learning_rate": 1e-3}),
    (
        "adamaxw-wd",
        gradopt.adamaxw,
        optax.adamaxw,
        {"learning_rate": 1e-3, "b2": 0.99, "weight_decay": 0.1},
    ),
    ("adopt", gradopt.adopt, optax.contrib.adopt, {"learning_rate": 1e-3}),
    (
        "adopt-nesterov",
        gradopt.adopt,
        optax.contrib.adopt,
        {"learning_rate": 1e-3, "b2": 0.99, "nesterov": True},
    ),
    (
        "adopt-noclip",
        gradopt.adopt,
        optax.contrib.adopt,
        {"learning_rate": 1e-3, "use_clipping": False},
    ),
    ("ademamix", gradopt.ademamix, optax.contrib.ademamix, {"learning_rate": 1e-3}),
    (
        "ademamix-wd",
        gradopt.ademamix,
        optax.contrib.ademamix,
        {"learning_rate": 1e-3, "b3": 0.99, "alpha": 2.0, "weight_decay": 0.1},
    ),
    (
        "ademamix-schedules",
        gradopt.ademamix,
        optax.contrib.ademamix,
        {"learning_rate": 1e-3, "b3": _b3_schedule, "alpha": _alpha_schedule},
    ),
    ("lamb", gradopt.lamb, optax.lamb, {"learning_rate": 1e-3}),
    (
        "lamb-wd",
        gradopt.lamb,
        optax.lamb,
        {"learning_rate": 1e-3, "weight_decay": 0.1, "mask": _first_leaves},
    ),
    ("lars", gradopt.lars, optax.lars, {"learning_rate": 0.1}),
    (
        "lars-masks",
        gradopt.lars,
        optax.lars,
        {
            "learning_rate": 0.1,
            "weight_decay": 0.1,
            "weight_decay_mask": _first_leaves,
            "trust_ratio_mask": _last_leaves,
            "eps": 1e-3,
            "momentum": 0.8,
            "nesterov": True,
        },
    ),
    ("fromage", gradopt.fromage, optax.fromage, {"learning_rate": 1e-3}),
    ("fromage-b", gradopt.fromage, optax.fromage, {"learning_rate": 1e-2, "min_norm": 0.5}),
    ("novograd", gradopt.novograd, optax.novograd, {"learning_rate": 1e-3}),
    (
        "novograd-wd",
        gradopt.novograd,
        optax.novograd,
        {"learning_rate": 1e-3, "b1": 0.5, "b2": 0.9, "eps_root": 1e-4, "weight_decay": 0.1},
    ),
    (
        "polyak_sgd",
        gradopt.polyak_sgd,
        optax.polyak_sgd,
        {"max_learning_rate": 0.05, "f_min": -5.0, "_value": True},
    ),
    (
        "polyak_sgd-sps+",
        gradopt.polyak_sgd,
        optax.polyak_sgd,
        {
            "max_learning_rate": 0.5,
            "scaling": 2.0,
            "f_min": -1.0,
            "eps": 0.1,
            "variant": "sps+",
            "_value": True,
        },
    ),
]


@pytest.mark.parametrize(
    ("make", "make_optax", "kwargs"),
    [pytest.param(*c[1:], id=c[0]) for c in OPTAX_CASES],
)
def test_equals_optax(make, make_optax, kwargs):
    kwargs = dict(kwargs)
    extra = kwargs.pop("_value", False)
    got = trajectory(make(**kwargs), with_value=extra)
    want = optax_trajectory(make_optax(**kwargs), with_value=extra)
    assert_close(got, want)


def numpy_trajectory(rule, steps=STEPS, value_rule=False):
    """The trajectory of a NumPy rule (``tests/references_modern.py``), leaf by leaf."""
    init, step = rule
    leaves, treedef = jax.tree.flatten(initial_params())
    ws = [np.asarray(w, np.float64) for w in leaves]
    states = [init(w) for w in ws]
    out = []
    for _ in range(steps):
        gs = [grad_leaf(w, np) for w in ws]
        new = [step(g, s, w) for g, s, w in zip(gs, states, ws, strict=True)]
        states = [s for _, s in new]
        ws = [w + u for w, (u, _) in zip(ws, new, strict=True)]
        out.append(ws)
    return jax.tree.unflatten(treedef, [np.stack(xs) for xs in zip(*out, strict=True)])


# (id, gradopt optimizer, NumPy rule): where gradopt follows the paper, not optax
PAPER_CASES = [
    ("adan", gradopt.adan(1e-2), ref.adan(1e-2)),
    (
        "adan-wd",
        gradopt.adan(1e-3, b2=0.8, weight_decay=0.1),
        ref.adan(1e-3, b2=0.8, weight_decay=0.1),
    ),
    ("radam-b2_0.999", gradopt.radam(1e-3), ref.radam(1e-3)),
]


@pytest.mark.parametrize(("tx", "rule"), [pytest.param(*c[1:], id=c[0]) for c in PAPER_CASES])
def test_equals_the_papers_rule(tx, rule):
    assert_close(trajectory(tx), numpy_trajectory(rule))


def test_adan_differs_from_optax_where_the_docstring_says():
    """optax.adan weighs the gradient difference by ``1 - b2``; gradopt, the paper
    and the authors' code by ``b2``: equal at ``b2 = 0.5`` only."""
    same = trajectory(gradopt.adan(1e-2, b2=0.5)), optax_trajectory(optax.adan(1e-2, b2=0.5))
    assert_close(*same)
    with pytest.raises(AssertionError):
        assert_close(trajectory(gradopt.adan(1e-2)), optax_trajectory(optax.adan(1e-2)))


def test_cautious_adam_and_lion_equal_the_papers_rule():
    for tx, rule in (
        (gradopt.cautious(gradopt.adam(1e-2)), ref.cautious(ref.adam(1e-2))),
        (gradopt.cautious(gradopt.lion(1e-2, weight_decay=0.0)), ref.cautious(ref.lion(1e-2))),
    ):
        assert_close(trajectory(tx), numpy_trajectory(rule))


def test_cautious_masks_something():
    """The reference test is not vacuous: on this problem some coordinates are masked."""
    plain = trajectory(gradopt.adam(1e-2))
    with pytest.raises(AssertionError):
        assert_close(trajectory(gradopt.cautious(gradopt.adam(1e-2))), plain)


# ----------------------------------------------------------------------------
# the fast path: one fused program per leaf signature, as adam

FUSED = [
    "sign_sgd",
    "signum",
    "lion",
    "radam",
    "adabelief",
    "yogi",
    "adan",
    "nadamw",
    "adamaxw",
    "adopt",
    "ademamix",
    "schedule_free_sgd",
    "schedule_free_adamw",
]


@pytest.mark.parametrize("name", FUSED)
def test_elementwise_optimizers_run_fused_one_program_per_leaf_signature(name):
    """The whole chain is one elementwise node, and its update traces one per-leaf
    program per distinct (shape, dtype), shared by the leaves of that signature."""
    from gradopt.core._elementwise import node_of

    params = {
        **{f"a{i}": jnp.ones((4, 3)) for i in range(4)},
        **{f"b{i}": jnp.ones(5) for i in range(3)},
        "s": jnp.ones(()),
    }
    tx = getattr(gradopt, name)()
    assert node_of(tx) is not None, f"{name} is not a single fused chain"
    jaxpr = jax.make_jaxpr(tx.update)(params, tx.init(params), params).jaxpr
    calls = [e for e in jaxpr.eqns if e.params.get("name") == "_leaf_program"]
    assert len(calls) == 8  # one call per leaf
    assert len({id(e.params["jaxpr"]) for e in calls}) == 3  # one program per signature


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (gradopt.lion, "mu_dtype"),
        (gradopt.nadamw, "mu_dtype"),
        (gradopt.adopt, "mu_dtype"),
        (gradopt.ademamix, "mu_dtype"),
        (gradopt.signum, "accumulator_dtype"),
    ],
)
def test_moment_dtype_errors_name_the_argument(factory, name):
    with pytest.raises(TypeError, match=f"{name} must be None or a floating dtype"):
        factory(**{name: jnp.int32})


def test_polyak_needs_the_loss_and_a_known_variant():
    tx = gradopt.polyak_sgd()
    params = {"w": jnp.ones(2)}
    with pytest.raises(TypeError, match="value=loss"):
        tx.update(params, tx.init(params), params)
    with pytest.raises(ValueError, match="variant"):
        gradopt.polyak_sgd(variant="sps-")


def test_fromage_refuses_a_schedule_and_lars_a_bad_mask():
    with pytest.raises(TypeError, match="learning_rate"):
        gradopt.fromage(lambda count: 0.01)
    with pytest.raises(TypeError, match="weight_decay_mask"):
        gradopt.lars(weight_decay_mask=[1, 0])


def test_belief_update_beyond_float16_saturates():
    """b1 = 0: s = eps_root, so the update is about g / eps (1.8e6), beyond float16's
    65504; the float16 leaf gets its largest finite value, not inf (the float32 one keeps
    its value)."""
    tx = gradopt.scale_by_belief(b1=0.0, eps=1e-6)
    grads = {"h": jnp.asarray(-2.318, jnp.float16), "f": jnp.asarray(-2.318, jnp.float32)}
    upd, state = tx.update(grads, tx.init(grads))
    assert upd["h"].dtype == jnp.float16
    assert float(upd["h"]) == -float(jnp.finfo(jnp.float16).max)
    want = -2.318 / (np.sqrt(1e-16 / (1 - 0.999)) + 1e-6)  # s_hat = eps_root / (1 - b2)
    np.testing.assert_allclose(float(upd["f"]), want, rtol=1e-4)
