"""gradopt.pack_params: packed parameters give the numbers of the plain tree."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt

STEPS = 20
MAX_LEAF = 64  # the (8, 16) weight and the (100,) leaf stay big


@functools.cache
def _params():
    """A small MLP with float32 and bfloat16 leaves; two leaves above MAX_LEAF entries."""
    rng = np.random.default_rng(0)

    def normal(shape, dtype=jnp.float32):
        return jnp.asarray(0.3 * rng.normal(size=shape), dtype)

    return {
        "l1": {"w": normal((4, 8)), "b": normal((8,))},
        "l2": {"w": normal((8, 16)), "b": normal((16,), jnp.bfloat16)},
        "l3": {"w": normal((16, 2), jnp.bfloat16), "b": normal((2,))},
        "scale": normal(()),
        "extra": normal((100,)),
    }


def _batch():
    rng = np.random.default_rng(1)
    return jnp.asarray(rng.normal(size=(5, 4)), jnp.float32), jnp.asarray(
        rng.normal(size=(5, 2)), jnp.float32
    )


def _loss(p, batch):
    x, y = batch
    f32 = lambda a: a.astype(jnp.float32)  # noqa: E731
    h = jnp.tanh(x @ p["l1"]["w"] + p["l1"]["b"][None])
    h = jnp.tanh(h @ p["l2"]["w"] + f32(p["l2"]["b"])[None])
    out = (h @ f32(p["l3"]["w"]) + p["l3"]["b"][None]) * p["scale"][None, None]
    return jnp.mean(jnp.square(out - y)) + 1e-3 * jnp.sum(jnp.square(p["extra"]))


def _close(a, b):
    """Equal to float32 rounding; bfloat16 leaves to a few bfloat16 ulps."""
    chex.assert_tree_all_finite(a)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        tol = 1e-5 if x.dtype == jnp.float32 else 2e-2
        chex.assert_trees_all_close(x, y, rtol=tol, atol=tol)


def test_layout_and_round_trip():
    params = _params()
    flat, unpack = gradopt.pack_params(params, max_leaf_size=MAX_LEAF)
    assert set(flat) == {"big", "packed"}
    assert [x.shape for x in flat["big"]] == [(100,), (8, 16)]  # in leaf order
    assert [(b.dtype, b.shape) for b in flat["packed"]] == [
        (jnp.float32, (8 + 32 + 2 + 1,)),
        (jnp.bfloat16, (16 + 32,)),
    ]
    chex.assert_trees_all_equal(unpack(flat), params)
    chex.assert_trees_all_equal(jax.jit(lambda f, u: u(f))(flat, unpack), params)
    chex.assert_trees_all_equal(unpack.pack(params), flat)


def test_grad_through_unpack_is_the_packed_plain_grad():
    params, batch = _params(), _batch()
    flat, unpack = gradopt.pack_params(params, max_leaf_size=MAX_LEAF)
    plain = jax.jit(jax.grad(_loss))(params, batch)
    grad = jax.jit(jax.grad(lambda f, u, b: _loss(u(f), b)))(flat, unpack, batch)
    assert jax.tree.structure(grad) == jax.tree.structure(flat)
    _close(grad, unpack.pack(plain))
    assert np.any(np.asarray(grad["packed"][1], np.float32) != 0)  # bfloat16 buffer reached


def _train_packed(tx, params, batch, steps=STEPS):
    flat, unpack = gradopt.pack_params(params, max_leaf_size=MAX_LEAF)

    def body(carry, _):
        f, s = carry
        g = jax.grad(lambda f: _loss(unpack(f), batch))(f)
        u, s = tx.update(g, s, f)
        return (gradopt.apply_updates(f, u), s), None

    run = jax.jit(lambda f, u: jax.lax.scan(body, (f, tx.init(f)), None, length=steps)[0][0])
    return unpack(run(flat, unpack))


def _train_plain(tx, params, batch, steps=STEPS):
    def body(carry, _):
        p, s = carry
        u, s = tx.update(jax.grad(_loss)(p, batch), s, p)
        return (gradopt.apply_updates(p, u), s), None

    return jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=steps)[0][0])(params)


OPTIMIZERS = {
    "adam": lambda: gradopt.adam(3e-2),
    "sgd_momentum": lambda: gradopt.sgd(3e-2, 0.9, nesterov=True),
    "adamw_chain": lambda: gradopt.chain(
        gradopt.clip_by_global_norm(1.0), gradopt.adamw(3e-2, weight_decay=0.1)
    ),
    "optax_sgd_momentum": lambda: optax.sgd(3e-2, momentum=0.9),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_training_matches_plain_tree(name):
    params, batch = _params(), _batch()
    if "adam" in name:
        # Adam's normalised step turns rounding differences of near-zero gradients into
        # bfloat16 rounding flips that move the whole model; compare it in float32.
        params = jax.tree.map(lambda x: x.astype(jnp.float32), params)
    tx = OPTIMIZERS[name]()
    packed = _train_packed(tx, params, batch)
    _close(packed, _train_plain(tx, params, batch))
    assert not np.allclose(packed["l1"]["w"], params["l1"]["w"])  # it did train


def test_adam_matches_numpy_reference():
    """Quadratic loss sum(c * w**2) / 2 with gradient c * w: Adam written in float64."""
    rng = np.random.default_rng(0)
    params = {f"w{i}": jnp.asarray(rng.normal(size=(3 + i,)), jnp.float32) for i in range(5)}
    params["big"] = jnp.asarray(rng.normal(size=(80,)), jnp.float32)
    coef = {k: 0.5 + i for i, k in enumerate(sorted(params))}
    flat, unpack = gradopt.pack_params(params, max_leaf_size=MAX_LEAF)
    tx = gradopt.adam(0.05)

    def loss(f):
        tree = unpack(f)
        return sum(0.5 * c * jnp.sum(jnp.square(tree[k])) for k, c in coef.items())

    def body(carry, _):
        f, s = carry
        u, s = tx.update(jax.grad(loss)(f), s, f)
        return (gradopt.apply_updates(f, u), s), None

    out = unpack(jax.jit(lambda f: jax.lax.scan(body, (f, tx.init(f)), None, STEPS)[0][0])(flat))
    for k, c in coef.items():
        w = np.asarray(params[k], np.float64)
        m = v = np.zeros_like(w)
        for t in range(1, STEPS + 1):
            g = c * w
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            w = w - 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(out[k], w, rtol=1e-5, atol=1e-6)


def test_vmap_over_learning_rates():
    params, batch = _params(), _batch()
    flat, unpack = gradopt.pack_params(params, max_leaf_size=MAX_LEAF)
    rates = jnp.asarray([1e-3, 1e-2, 3e-2], jnp.float32)

    def one(lr, f, u):
        tx = gradopt.sgd(lr, 0.9)
        s = tx.init(f)
        for _ in range(3):
            upd, s = tx.update(jax.grad(lambda f: _loss(u(f), batch))(f), s, f)
            f = gradopt.apply_updates(f, upd)
        return f

    batched = jax.jit(jax.vmap(one, in_axes=(0, None, None)))(rates, flat, unpack)
    single = jax.jit(one)
    for i, lr in enumerate(rates):
        _close(jax.tree.map(lambda x, i=i: x[i], batched), single(lr, flat, unpack))


def test_no_recompile_and_stable_types():
    params, batch = _params(), _batch()
    flat, unpack = gradopt.pack_params(params, max_leaf_size=MAX_LEAF)
    tx = gradopt.adam(1e-2)

    @jax.jit
    def step(f, u, s):
        upd, s = tx.update(jax.grad(lambda f: _loss(u(f), batch))(f), s, f)
        return gradopt.apply_updates(f, upd), u, s

    state = tx.init(flat)
    out = step(flat, unpack, state)
    for _ in range(2):
        out = step(*out)
    # a second pack_params of an equal tree (new offsets arrays) reuses the program
    flat2, unpack2 = gradopt.pack_params(_params(), max_leaf_size=MAX_LEAF)
    step(flat2, unpack2, state)
    assert step._cache_size() == 1
    chex.assert_trees_all_equal_dtypes(out[0], flat)
    chex.assert_trees_all_equal_shapes(out[0], flat)
    assert all(o.dtype == jnp.int32 for o in jax.tree.leaves(out[1]))


def test_errors():
    params = _params()
    flat, unpack = gradopt.pack_params(params, max_leaf_size=MAX_LEAF)
    with pytest.raises(ValueError, match="pack_params: unpack expected the packed parameters"):
        unpack(params)
    short = {"big": flat["big"], "packed": (flat["packed"][0][:-1], flat["packed"][1])}
    with pytest.raises(ValueError, match="sizes \\[43, 48\\]"):
        unpack(short)
    swapped = {"big": flat["big"], "packed": flat["packed"][::-1]}
    with pytest.raises(ValueError, match="unpack expected"):
        unpack(swapped)
    with pytest.raises(ValueError, match="unpack.pack got a tree"):
        unpack.pack({"l1": params["l1"]})
    with pytest.raises(ValueError, match="max_leaf_size"):
        gradopt.pack_params(params, max_leaf_size=-1)
    with pytest.raises(TypeError, match="max_leaf_size must be an int"):
        gradopt.pack_params(params, max_leaf_size=64.0)
