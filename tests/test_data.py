"""gradopt.data: batch / stochastic / mini-batch, sequential / shuffled / curriculum orders."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt import data

KEY = jax.random.key(42)


def _valid(ix):
    return np.asarray(ix.indices)[np.asarray(ix.mask)]


@pytest.mark.parametrize(
    "order, n, batch_size",
    [
        ("sequential", 10, 3),
        ("shuffle", 10, None),
        ("shuffle", 10, 1),
        ("shuffle", 10, 3),
        ("shuffle", 12, 4),
        ("curriculum", 10, 3),
        ("curriculum", 7, 7),
    ],
)
def test_every_example_once_per_epoch(order, n, batch_size):
    scores = jnp.asarray(np.random.default_rng(0).random(n)) if order == "curriculum" else None
    ix = data.epoch_indices(n, batch_size, order=order, key=KEY, epoch=3, scores=scores)
    b = n if batch_size is None else batch_size
    assert ix.indices.shape == (-(-n // b), b) and ix.indices.dtype == jnp.int32
    np.testing.assert_array_equal(np.sort(_valid(ix)), np.arange(n))
    # Padding only in the last row, at its end.
    mask = np.asarray(ix.mask)
    assert mask[:-1].all() and mask[-1].sum() == n - b * (len(mask) - 1)
    assert np.all(np.diff(mask[-1].astype(int)) <= 0)


def test_drop_last_shapes_and_distinct_examples():
    ix = data.epoch_indices(10, 3, order="shuffle", key=KEY, drop_last=True)
    assert ix.indices.shape == (3, 3) and bool(ix.mask.all())
    assert len(np.unique(ix.indices)) == 9
    assert data.num_batches(10, 3, drop_last=True) == 3
    assert data.num_batches(10, 3) == 4
    assert data.num_batches(10) == 1


def test_sequential_order():
    ix = data.epoch_indices(6, 2)
    np.testing.assert_array_equal(ix.indices, [[0, 1], [2, 3], [4, 5]])


def test_shuffle_fresh_per_epoch_and_reproducible():
    perms = [_valid(data.epoch_indices(50, 5, order="shuffle", key=KEY, epoch=e)) for e in range(4)]
    for i in range(4):
        for j in range(i):
            assert not np.array_equal(perms[i], perms[j])
    again = _valid(data.epoch_indices(50, 5, order="shuffle", key=KEY, epoch=2))
    np.testing.assert_array_equal(again, perms[2])
    other_key = _valid(data.epoch_indices(50, 5, order="shuffle", key=jax.random.key(1), epoch=2))
    assert not np.array_equal(other_key, perms[2])


def test_shuffle_is_uniform_over_positions():
    # Over 2,000 epochs, each of 5 examples lands first with probability 1/5:
    # counts have sd sqrt(2000 * 0.2 * 0.8) ~= 17.9; allow 5 sd around 400.
    first = jax.jit(
        jax.vmap(lambda e: data.epoch_indices(5, 1, order="shuffle", key=KEY, epoch=e)[0][0, 0])
    )(jnp.arange(2000))
    counts = np.bincount(np.asarray(first), minlength=5)
    assert np.all(np.abs(counts - 400) < 5 * 17.9), counts


def test_curriculum_follows_scores():
    scores = jnp.asarray([3.0, 0.5, 2.0, 0.5, 9.0, -1.0])
    ix = data.epoch_indices(6, 4, order="curriculum", scores=scores)
    # Easy to hard; the tie (0.5) keeps index order.
    np.testing.assert_array_equal(_valid(ix), [5, 1, 3, 2, 0, 4])


def test_curriculum_bands_are_shuffled_within_and_ordered_between():
    n, bands = 40, 4
    scores = jnp.asarray(np.random.default_rng(3).permutation(n).astype(np.float32))
    order = [
        _valid(
            data.epoch_indices(
                n, 8, order="curriculum", scores=scores, num_bands=bands, key=KEY, epoch=e
            )
        )
        for e in range(2)
    ]
    sorted_rank = np.empty(n, int)
    sorted_rank[np.argsort(np.asarray(scores), kind="stable")] = np.arange(n)
    for perm in order:
        # The example at position i belongs to band floor(i * bands / n) of the sorted order...
        np.testing.assert_array_equal((sorted_rank[perm] * bands) // n, (np.arange(n) * bands) // n)
        # ...but the exact score order is not kept inside the bands.
        assert not np.all(np.diff(sorted_rank[perm]) > 0)
    assert not np.array_equal(order[0], order[1])  # reshuffled each epoch


def test_epoch_in_scan_equals_python_loop():
    rng = np.random.default_rng(5)
    dataset = {
        "x": jnp.asarray(rng.standard_normal((23, 3)), jnp.float32),
        "y": jnp.asarray(rng.standard_normal(23), jnp.float32),
    }
    opt = gradopt.sgd(0.05)

    def loss(params, batch, weights):
        r = batch["x"] @ params - batch["y"]
        return jnp.sum(weights * r**2) / jnp.sum(weights)

    @jax.jit
    def train(params, key):
        def epoch_fn(carry, epoch):
            ix = data.epoch_indices(23, 5, order="shuffle", key=key, epoch=epoch)

            def step(carry, row):
                params, state = carry
                indices, mask = row
                g = jax.grad(loss)(params, data.take(dataset, indices), mask.astype(jnp.float32))
                u, state = opt.update(g, state, params)
                return (gradopt.apply_updates(params, u), state), None

            carry, _ = jax.lax.scan(step, carry, (ix.indices, ix.mask))
            return carry, None

        (params, _), _ = jax.lax.scan(epoch_fn, (params, opt.init(params)), jnp.arange(3))
        return params

    got = train(jnp.zeros(3), KEY)

    @jax.jit
    def python_step(params, state, batch):
        g = jax.grad(loss)(params, batch, jnp.ones(len(batch["y"])))
        u, state = opt.update(g, state, params)
        return gradopt.apply_updates(params, u), state

    params, state = jnp.zeros(3), opt.init(jnp.zeros(3))
    seen = 0
    for epoch in range(3):
        for batch in data.batches(dataset, 5, order="shuffle", key=KEY, epoch=epoch):
            assert len(batch["y"]) in (5, 3)  # the kept short batch has its true size
            params, state = python_step(params, state, batch)
            seen += len(batch["y"])
    assert seen == 3 * 23
    chex.assert_trees_all_close(got, params, rtol=1e-5, atol=1e-6)


def test_batches_on_any_pytree_and_stochastic():
    dataset = (jnp.arange(4.0), {"label": jnp.arange(4) * 10})
    out = list(data.batches(dataset, 1))
    assert len(out) == 4
    chex.assert_trees_all_equal(out[2], (jnp.array([2.0]), {"label": jnp.array([20])}))
    full = list(data.batches(dataset))
    assert len(full) == 1
    chex.assert_trees_all_equal(full[0], dataset)
    assert len(list(data.batches(dataset, 3, drop_last=True))) == 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n": 0}, ValueError, "n must be"),
        ({"n": 5, "batch_size": 6}, ValueError, "larger than"),
        ({"n": 5, "order": "random"}, ValueError, "order"),
        ({"n": 5, "order": "shuffle"}, ValueError, "PRNG key"),
        ({"n": 5, "order": "curriculum"}, ValueError, "scores"),
        ({"n": 5, "scores": jnp.zeros(5)}, ValueError, "only used"),
        ({"n": 5, "drop_last": 1}, TypeError, "drop_last"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.epoch_indices(**kwargs)


def test_mismatched_leading_dimension():
    with pytest.raises(ValueError, match="leading"):
        list(data.batches({"x": jnp.zeros(3), "y": jnp.zeros(4)}, 1))
