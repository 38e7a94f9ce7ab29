"""The laws of composition, over the registry and over random chains of primitives.

* chain is associative: nesting never changes the optimizer;
* a gradopt stage gives the same result inside ``optax.chain`` as inside
  ``gradopt.chain`` (every stage reads only its input, so there is nothing
  that optax could fail to pass);
* the state's tree structure depends on the configuration's shape, never on a
  hyperparameter's value: 0.0, a traced 0.0 and another value give the same
  structure, so ``optax.inject_hyperparams``, ``gradopt.inject_hyperparams``
  and checkpoints work on every optimizer;
* a state that ``init`` would not build is refused with a ValueError;
* the fused path computes per-step scalars once, not once per leaf.

The reference for each law is the law itself: two ways of writing the same
optimizer (or the same optimizer under two libraries' chains) must agree.
Where a law is about Adam, the NumPy reference of ``tests/references.py``
(written from the paper) is the judge.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradopt
from tests.registry import REGISTRY, as_matrices

OPTIMIZERS = [e for e in REGISTRY if e.optimizer]


def params_tree():
    return {"w": jnp.asarray([[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]]), "b": (jnp.asarray(0.3),)}


def grads_seq(n=6, seed=0):
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(params_tree())
    return [
        jax.tree.unflatten(
            treedef, [jnp.asarray(rng.normal(size=np.shape(x)) * 3.0, jnp.float32) for x in leaves]
        )
        for _ in range(n)
    ]


def trajectory(tx, grads, params=None, *, chain_fn=None):
    params = params_tree() if params is None else params
    state = tx.init(params)
    out = []
    for g in grads:
        u, state = tx.update(g, state, params)
        params = gradopt.apply_updates(params, u)
        out.append(params)
    return out


def assert_same(a, b, rtol=1e-6, atol=1e-7):
    for x, y in zip(a, b, strict=True):
        jax.tree.map(lambda p, q: np.testing.assert_allclose(p, q, rtol=rtol, atol=atol), x, y)


# ----------------------------------------------------------------------------
# associativity


def adam_primitives(lr=1e-2):
    """Adam written flat, from its primitives: what a user composes by hand."""
    return [
        gradopt.add_decayed_weights(0.0),
        gradopt.divide(
            gradopt.chain(gradopt.ema(0.9), gradopt.bias_correction(0.9)),
            gradopt.root_mean_square(0.999, eps=1e-8, debias=True),
        ),
        gradopt.scale_by_learning_rate(lr),
    ]


def test_clipping_before_adam_is_the_same_nested_or_flat():
    """Problem 1 of the composition issue: the flat chain saw the unclipped gradient."""
    grads = grads_seq(25)
    clip = gradopt.clip_by_global_norm(0.5)
    nested = gradopt.chain(clip, gradopt.adam(1e-2))
    flat = gradopt.chain(clip, *adam_primitives())
    left = gradopt.chain(gradopt.chain(clip, adam_primitives()[0]), *adam_primitives()[1:])
    ref = trajectory(nested, grads)
    assert_same(trajectory(flat, grads), ref)
    assert_same(trajectory(left, grads), ref)
    # and the clipped gradient reaches both moments: compare with a NumPy Adam
    # fed the clipped gradients
    p = {k: np.asarray(v, np.float64) for k, v in jax.tree.leaves_with_path(params_tree())}
    del p
    flat_params = [np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)]) for t in ref]
    g_np = [
        np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)]).astype(np.float64) for g in grads
    ]
    w = np.concatenate([np.ravel(x) for x in jax.tree.leaves(params_tree())]).astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(g_np, start=1):
        g = g * min(1.0, 0.5 / np.linalg.norm(g))
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 1e-2 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(flat_params[t - 1], w, rtol=2e-5, atol=1e-6)


STAGES = {
    "scale": lambda: gradopt.scale(0.5),
    "ema": lambda: gradopt.ema(0.8),
    "ema_sq": lambda: gradopt.ema_of_squares(0.9),
    "bias": lambda: gradopt.bias_correction(0.8),
    "rms": lambda: gradopt.scale_by_rms(0.9, eps=1e-3, debias=True),
    "rms_root": lambda: gradopt.root_mean_square(0.9, eps=1e-3),
    "sos": lambda: gradopt.scale_by_sum_of_squares(eps=1e-3),
    "trace": lambda: gradopt.trace(0.5),
    "nesterov": lambda: gradopt.trace(0.5, nesterov=True),
    "max": lambda: gradopt.scale_by_max_norm(0.9, eps=1e-3),
    "clip": lambda: gradopt.clip(1.0),
    "clip_norm": lambda: gradopt.clip_by_global_norm(2.0),
    "lr": lambda: gradopt.scale_by_learning_rate(0.1),
    "optax_trace": lambda: optax.trace(0.5),
    "divide": lambda: gradopt.divide(gradopt.ema(0.8), gradopt.root_mean_square(0.9, eps=1e-3)),
}


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    names=st.lists(st.sampled_from(sorted(STAGES)), min_size=3, max_size=5),
    cut=st.data(),
)
def test_chain_is_associative_over_random_chains(names, cut):
    i = cut.draw(st.integers(1, len(names) - 1))
    j = cut.draw(st.integers(i + 1, len(names)))
    stages = [STAGES[n]() for n in names]
    flat = gradopt.chain(*stages)
    nested = gradopt.chain(*stages[:i], gradopt.chain(*stages[i:j]), *stages[j:])
    in_optax = optax.chain(*stages)
    grads = grads_seq(4)
    ref = trajectory(flat, grads)
    assert_same(trajectory(nested, grads), ref)
    assert_same(trajectory(in_optax, grads), ref)


# ----------------------------------------------------------------------------
# gradopt stages inside optax.chain


def test_adams_primitives_inside_optax_chain_are_adam():
    """Problem 2: inside optax.chain the primitives used to become another optimizer."""
    grads = grads_seq(10)
    ref = trajectory(gradopt.adam(1e-2), grads)
    assert_same(trajectory(optax.chain(*adam_primitives()), grads), ref)
    # and they are optax's Adam, to float32 rounding (optax computes m_hat / v_hat
    # with divisions, gradopt with reciprocals)
    with jax.numpy_dtype_promotion("standard"):  # optax.adam mixes dtypes internally
        by_optax = trajectory(optax.adam(1e-2), grads)
    assert_same(by_optax, ref, rtol=2e-5, atol=1e-6)


def test_scale_by_rms_is_divide_of_identity_by_root_mean_square():
    grads = grads_seq(8)
    for kwargs in ({}, {"debias": True}, {"centered": True}, {"amsgrad": True, "debias": True}):
        a = gradopt.scale_by_rms(0.9, eps=1e-6, **kwargs)
        b = gradopt.divide(gradopt.identity(), gradopt.root_mean_square(0.9, eps=1e-6, **kwargs))
        assert_same(trajectory(a, grads), trajectory(b, grads))
    a = gradopt.scale_by_max_norm(0.9, eps=1e-6)
    b = gradopt.divide(gradopt.identity(), gradopt.infinity_norm(0.9, eps=1e-6))
    assert_same(trajectory(a, grads), trajectory(b, grads))


def test_divide_with_an_opaque_stage_equals_the_fused_form():
    grads = grads_seq(6)
    num = gradopt.chain(gradopt.ema(0.9), gradopt.bias_correction(0.9))
    den = gradopt.root_mean_square(0.99, eps=1e-8, debias=True)
    fused = gradopt.divide(num, den)
    opaque = gradopt.divide(num, gradopt.chain(den, optax.identity()))
    assert_same(trajectory(opaque, grads), trajectory(fused, grads))


def test_an_unfused_branch_keeps_none_leaves():
    tx = gradopt.divide(gradopt.ema(0.9), gradopt.chain(gradopt.scale(2.0), optax.identity()))
    params = {"a": None, "b": jnp.ones(2)}
    updates, _ = tx.update({"a": None, "b": jnp.ones(2)}, tx.init(params))
    assert updates["a"] is None
    np.testing.assert_allclose(updates["b"], 0.05)  # 0.1 * g / (2 * g)


def test_branch_argument_errors():
    with pytest.raises(ValueError, match="needs two or more transforms"):
        gradopt.branch(gradopt.identity(), join=gradopt.quotient)
    with pytest.raises(TypeError, match="join must be a function"):
        gradopt.branch(gradopt.identity(), gradopt.identity(), join=3)
    with pytest.raises(TypeError, match="not a gradient transformation"):
        gradopt.divide(gradopt.identity(), "rms")


# ----------------------------------------------------------------------------
# the state's structure depends on the configuration, not on values


def _structure_values(entry):
    """Pairs (name, values) of numeric hyperparameters to vary: 0 if allowed, and another."""
    out = []
    for name, r in entry.ranges.items():
        if name not in entry.kwargs and name not in ("weight_decay", "momentum", "dampening"):
            continue
        low = 0.0 if r.low is None else r.low
        values = []
        if not r.low_open and (r.high is None or low <= r.high):
            values.append(low)
        hi = r.high if r.high is not None else 1.0
        values.append(low + 0.3 * (hi - low) if r.high is not None else low + 0.3)
        out.append((name, values))
    return out


def _signature(tree):
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, [(jnp.shape(x), jnp.result_type(x)) for x in leaves]


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name) for e in REGISTRY if e.ranges])
def test_state_structure_does_not_depend_on_hyperparameter_values(entry):
    params = as_matrices(entry, params_tree())
    for name, values in _structure_values(entry):
        if name == "dampening" and entry.kwargs.get("nesterov"):
            continue
        signatures = [_signature(entry.make(**{name: v}).init(params)) for v in values]
        traced = jax.eval_shape(lambda v, n=name: entry.make(**{n: v}).init(params), 0.25)
        signatures.append(_signature(traced))
        for sig in signatures[1:]:
            assert sig[0] == signatures[0][0], f"{entry.name}: {name} changes the state structure"


@pytest.mark.parametrize(
    "factory,kwargs",
    [
        (gradopt.adam, {"learning_rate": 1e-2}),
        (gradopt.sgd, {"learning_rate": 0.1}),
        (gradopt.sgd, {"learning_rate": 0.1, "momentum": 0.9}),
        (gradopt.nadam, {"learning_rate": 1e-2}),
        (gradopt.rmsprop, {"learning_rate": 1e-2}),
        (gradopt.rmsprop, {"learning_rate": 1e-2, "momentum": 0.0}),
        (gradopt.adagrad, {"learning_rate": 1e-2}),
        (gradopt.adamw, {"learning_rate": 1e-2}),
        (gradopt.adamax, {"learning_rate": 1e-2}),
        (gradopt.adadelta, {"learning_rate": 1.0}),
        (gradopt.amsgrad, {"learning_rate": 1e-2}),
        (gradopt.compat.torch.sgd, {"lr": 0.1}),
        (gradopt.compat.torch.adam, {"lr": 0.1}),
        (gradopt.compat.torch.rmsprop, {"lr": 0.1}),
        (gradopt.compat.keras.sgd, {"learning_rate": 0.1}),
        (gradopt.compat.keras.rmsprop, {"learning_rate": 0.1}),
    ],
    ids=lambda x: (
        getattr(x, "__module__", "").split(".")[-1] + "." + x.__name__
        if callable(x)
        else "-".join(x)
    ),
)
def test_optax_inject_hyperparams_works_under_jit(factory, kwargs):
    """Problem 3: optax traces the defaults in update but not in init."""
    params = params_tree()
    tx = optax.inject_hyperparams(factory)(**kwargs)
    state = tx.init(params)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    direct = factory(**kwargs)
    ref_state = direct.init(params)
    for g in grads_seq(3):
        u, state = step(g, state, params)
        r, ref_state = direct.update(g, ref_state, params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), u, r)


@pytest.mark.parametrize("factory", [gradopt.sgd, gradopt.rmsprop])
@pytest.mark.parametrize("momentum", [0.0, 5e-222])
def test_gradopt_inject_hyperparams_with_a_zero_momentum_runs_eagerly(factory, momentum):
    params = params_tree()
    tx = gradopt.inject_hyperparams(factory)(learning_rate=0.0, momentum=momentum)
    state = tx.init(params)
    u, state = tx.update(grads_seq(1)[0], state, params)
    assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(u))


def test_a_checkpoint_made_with_one_weight_decay_loads_into_another():
    params = params_tree()
    saved = gradopt.adam(1e-2, weight_decay=0.0).init(params)
    other = gradopt.adam(1e-2, weight_decay=1e-4)
    u, _ = other.update(grads_seq(1)[0], saved, params)  # accepted: same structure
    assert jax.tree.structure(u) == jax.tree.structure(params)


def test_flax_nnx_optimizer_with_injected_gradopt_adam():
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(
        model, optax.inject_hyperparams(gradopt.adam)(learning_rate=1e-2), wrt=nnx.Param
    )

    @nnx.jit
    def step(model, opt, x):
        def loss(m):
            return jnp.mean(m(x) ** 2)

        grads = nnx.grad(loss)(model)
        opt.update(model, grads)
        return loss(model)

    x = jnp.ones((4, 3))
    first = float(step(model, opt, x))
    for _ in range(5):
        last = float(step(model, opt, x))
    assert last < first


# ----------------------------------------------------------------------------
# foreign states


def test_another_optimizers_state_is_refused():
    params = params_tree()
    g = grads_seq(1)[0]
    made = [(e.name, e.make(), e) for e in OPTIMIZERS]
    states = {name: tx.init(params) for name, tx, _ in made}
    refused = 0
    for name, tx, _entry in made:
        for _other, state in states.items():
            if jax.tree.structure(state) == jax.tree.structure(states[name]):
                continue
            with pytest.raises(
                ValueError, match="does not match what this optimizer's init builds"
            ):
                tx.update(g, state, params)
            refused += 1
    assert refused > len(made)  # the pairs with different structures were all tried


def test_amsgrads_state_is_refused_by_adam():
    params = params_tree()
    with pytest.raises(ValueError, match="init builds"):
        gradopt.adam().update(grads_seq(1)[0], gradopt.amsgrad().init(params), params)


# ----------------------------------------------------------------------------
# one pass per leaf: per-step scalars are computed once


def _count(jaxpr, name):
    """Occurrences of primitive ``name``, counting a call to a sub-program once per call."""
    n = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == name:
            n += 1
        for value in eqn.params.values():
            sub = getattr(value, "jaxpr", None)
            if sub is not None and hasattr(sub, "eqns"):
                n += _count(sub, name)
    return n


@pytest.mark.parametrize("n_leaves", [1, 8])
def test_adam_computes_its_bias_corrections_once_per_step(n_leaves):
    params = {f"w{i}": jnp.ones(3) for i in range(n_leaves)}
    tx = gradopt.adam(1e-3)
    state = tx.init(params)
    jaxpr = jax.make_jaxpr(tx.update)(params, state, params).jaxpr
    assert _count(jaxpr, "expm1") == 2  # 1 - b1**t and 1 - b2**t, whatever the leaves
    assert _count(jaxpr, "div") <= 2 + n_leaves  # one division per leaf
    assert _count(jaxpr, "sqrt") == n_leaves
