"""gradopt.packed: same numbers as the plain path, for any elementwise chain."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt

STEPS = 30


def _tree(dtypes=(jnp.float32,)):
    """A nested tree of small and one larger leaf, in the given dtypes (cycled)."""
    key = jax.random.PRNGKey(0)
    shapes = [(3,), (4, 5), (), (2, 3, 2), (7,), (40, 30)]
    leaves = [
        jax.random.normal(jax.random.fold_in(key, i), s).astype(dtypes[i % len(dtypes)])
        for i, s in enumerate(shapes)
    ]
    return {
        "a": leaves[0],
        "b": (leaves[1], leaves[2]),
        "c": {"d": leaves[3], "e": leaves[4]},
        "f": leaves[5],
    }


def _grad_fn(params):
    """A deterministic, step-dependent gradient: grad of sum(w^2 * c) plus a drift."""

    def g(p, t):
        c = jnp.asarray(1.0, jnp.float32) + 0.1 * jnp.sin(t.astype(jnp.float32))
        return (2.0 * c * p.astype(jnp.float32) + 0.01).astype(p.dtype)

    return g


def _run(tx, params, *, pass_params=True, steps=STEPS):
    """``steps`` updates in one compiled scan; returns the trajectory of parameters."""
    g = _grad_fn(params)

    def body(carry, t):
        p, s = carry
        grads = jax.tree.map(lambda x: g(x, t), p)
        u, s = tx.update(grads, s, p if pass_params else None)
        p = gradopt.apply_updates(p, u)
        return (p, s), p

    @jax.jit
    def run(p):
        return jax.lax.scan(body, (p, tx.init(p)), jnp.arange(steps))

    (final, state), _ = run(params)
    return final, state


def _close(a, b):
    """Equal to float32 rounding; bfloat16 leaves to a few bfloat16 ulps (2**-8 relative)."""
    chex.assert_tree_all_finite(a)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        tol = 1e-5 if x.dtype == jnp.float32 else 2e-2
        chex.assert_trees_all_close(x, y, rtol=tol, atol=tol)


schedule = gradopt.schedules.linear(0.05, 0.005, 40)

OPTIMIZERS = {
    "adam": lambda: gradopt.adam(1e-2),
    "sgd_momentum": lambda: gradopt.sgd(1e-2, 0.9, nesterov=True),
    "rmsprop": lambda: gradopt.rmsprop(1e-2, centered=True, momentum=0.5),
    "adamw_needs_params": lambda: gradopt.adamw(1e-2, weight_decay=0.1),
    "chain_with_schedule": lambda: gradopt.chain(
        gradopt.clip_by_global_norm(1.0),
        gradopt.scale_by_rms(0.99, eps=1e-6, debias=True),
        gradopt.scale_by_learning_rate(schedule),
    ),
    "optax_sgd_momentum": lambda: optax.sgd(1e-2, momentum=0.9),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_packed_matches_plain(name):
    params = _tree()
    # max_leaf_size=100 keeps the (40, 30) leaf out of the buffer: both paths are exercised.
    plain, _ = _run(OPTIMIZERS[name](), params)
    packed, state = _run(gradopt.packed(OPTIMIZERS[name](), max_leaf_size=100), params)
    _close(packed, plain)
    assert isinstance(state, gradopt.PackedState)
    assert len(state.offsets) == 5


def test_packed_adam_matches_numpy_reference():
    """Independent check: Adam written from the formula in float64 NumPy."""
    params = _tree()
    got, _ = _run(gradopt.packed(gradopt.adam(1e-2)), params, steps=STEPS)
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 1e-2
    leaves, treedef = jax.tree.flatten(params)
    out = []
    for w in leaves:
        w = np.asarray(w, np.float64)
        m = np.zeros_like(w)
        v = np.zeros_like(w)
        for t in range(STEPS):
            c = 1.0 + 0.1 * np.sin(float(np.float32(t)))
            g = 2.0 * c * w + 0.01
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            mh, vh = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
            w = w - lr * mh / (np.sqrt(vh) + eps)
        out.append(w.astype(np.float32))
    chex.assert_trees_all_close(got, jax.tree.unflatten(treedef, out), rtol=1e-4, atol=1e-5)


def test_params_none():
    params = _tree()
    plain, _ = _run(gradopt.adam(1e-2), params, pass_params=False)
    packed, _ = _run(gradopt.packed(gradopt.adam(1e-2)), params, pass_params=False)
    _close(packed, plain)


def test_weight_decay_needs_params():
    tx = gradopt.packed(gradopt.adamw(1e-2, weight_decay=0.1))
    params = _tree()
    grads = jax.tree.map(jnp.zeros_like, params)
    with pytest.raises((ValueError, TypeError)):
        tx.update(grads, tx.init(params), None)


@pytest.mark.parametrize(
    "dtypes", [(jnp.bfloat16,), (jnp.float32, jnp.bfloat16)], ids=["bf16", "mixed"]
)
def test_low_precision_and_mixed_dtypes(dtypes):
    params = _tree(dtypes)
    tx = lambda: gradopt.adam(1e-2, mu_dtype=jnp.bfloat16, nu_dtype=jnp.float32)  # noqa: E731
    plain, _ = _run(tx(), params)
    packed, state = _run(gradopt.packed(tx(), max_leaf_size=100), params)
    _close(packed, plain)
    chex.assert_trees_all_equal_dtypes(packed, params)
    # adam's state: (decay, ((ema, bias correction), root mean square), learning rate)
    numerator, denominator = state.inner_state[1]
    buffers = numerator[0].ema["packed"]  # ema(b1)'s first moment, one buffer per dtype
    assert all(b.dtype == jnp.bfloat16 for b in buffers)
    assert all(b.dtype == jnp.float32 for b in denominator.nu["packed"])
    assert len(buffers) == len(set(jnp.dtype(d) for d in dtypes))


def test_clip_by_norm_outside_packed():
    params = _tree()
    outer = lambda inner: gradopt.chain(gradopt.clip_by_norm(0.5), inner)  # noqa: E731
    plain, _ = _run(outer(gradopt.adam(1e-2)), params)
    packed, _ = _run(outer(gradopt.packed(gradopt.adam(1e-2))), params)
    _close(packed, plain)


def test_vmap_over_learning_rates():
    params = _tree()
    rates = jnp.asarray([1e-3, 1e-2, 3e-2], jnp.float32)
    swept = jax.vmap(lambda lr: _run(gradopt.packed(gradopt.adam(lr)), params, steps=10)[0])(rates)
    for i, lr in enumerate([1e-3, 1e-2, 3e-2]):
        plain, _ = _run(gradopt.adam(lr), params, steps=10)
        _close(jax.tree.map(lambda x, i=i: x[i], swept), plain)


def test_no_recompile_and_stable_state():
    params = _tree()
    tx = gradopt.packed(gradopt.adam(1e-2))
    traces = []

    @jax.jit
    def step(p, s):
        traces.append(1)
        u, s = tx.update(jax.tree.map(jnp.ones_like, p), s, p)
        return gradopt.apply_updates(p, u), s

    s0 = tx.init(params)
    p1, s1 = step(params, s0)
    p2, s2 = step(p1, s1)
    assert len(traces) == 1
    assert jax.tree.structure(s0) == jax.tree.structure(s2)
    chex.assert_trees_all_equal_shapes_and_dtypes(s0, s2)
    assert gradopt.packed(gradopt.adam(1e-2)) == tx


def test_errors():
    with pytest.raises(TypeError, match="gradopt.packed"):
        gradopt.packed(lambda g: g)
    with pytest.raises(TypeError, match="max_leaf_size"):
        gradopt.packed(gradopt.adam(), max_leaf_size=1.5)
    with pytest.raises(ValueError, match="max_leaf_size"):
        gradopt.packed(gradopt.adam(), max_leaf_size=-1)
    tx = gradopt.packed(gradopt.adam())
    params = _tree()
    with pytest.raises(ValueError, match="state"):
        tx.update(params, gradopt.adam().init(params), params)
    with pytest.raises(ValueError, match="init builds"):  # a state for other params
        tx.update({"x": jnp.ones(3)}, tx.init(params))


def test_a_packed_stage_inside_an_outer_chain_equals_the_plain_stage():
    """A statistic inside packed is built from what the outer chain passes it, packed."""
    params = _tree()

    def outer(wrap):
        return gradopt.chain(
            gradopt.scale(3.0),
            wrap(gradopt.scale_by_rms(0.9, eps=1e-6, debias=True)),
            gradopt.scale_by_learning_rate(1e-2),
        )

    plain, _ = _run(outer(lambda tx: tx), params, steps=10)
    packed, _ = _run(outer(gradopt.packed), params, steps=10)
    _close(packed, plain)
