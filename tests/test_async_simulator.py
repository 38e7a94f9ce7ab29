"""The asynchronous rules on the deterministic simulator: exact identities, references, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt import distributed as gd
from gradopt.distributed._async_common import BatchSampler

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 5)).astype(np.float32)
Y = (RNG.random(96) > 0.5).astype(np.float32)


def logistic(p, x, y):
    z = x @ p["w"] + p["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def params0():
    return {"w": jnp.zeros(5, jnp.float32), "b": jnp.zeros((), jnp.float32)}


ADAGRAD = gd.downpour(gradopt.adagrad(0.1))  # shared: its compiled steps are reused


def shards(n):
    return [(X[i::n], Y[i::n]) for i in range(n)]


def bitwise(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda u, v: np.array_equal(u, v), a, b)))


def plain_run(tx, shard, steps, batch_size, seed, worker=0):
    """The plain optimizer as a user writes it: a jitted gradient, a jitted update."""
    sampler = BatchSampler(shard, batch_size, seed, worker)
    grad = jax.jit(jax.grad(logistic))

    @jax.jit
    def apply(p, s, g):
        u, s = tx.update(g, s, p)
        return gradopt.apply_updates(p, u), s

    p, s = params0(), tx.init(params0())
    for _ in range(steps):
        p, s = apply(p, s, grad(p, *sampler.next()))
    return p


@pytest.mark.parametrize(
    ("make_tx", "n_shards"),
    [(lambda: gradopt.adagrad(0.1), 1), (lambda: gradopt.adam(0.01), 2)],
    ids=["adagrad-1-shard", "adam-2-shards"],
)
def test_one_replica_downpour_is_the_plain_optimizer_bitwise(make_tx, n_shards):
    tx = make_tx()
    result = gd.simulate(
        gd.downpour(tx),
        params0(),
        logistic,
        shards(1),
        n_workers=1,
        steps=60,
        batch_size=8,
        seed=3,
        n_shards=n_shards,
    )
    assert bitwise(result.params, plain_run(tx, shards(1)[0], 60, 8, 3))
    assert result.telemetry.delays == {0: 60}
    assert result.telemetry.pushes == [60]


def test_downpour_with_stale_pushes_is_not_the_plain_optimizer():
    tx = ADAGRAD.tx
    result = gd.simulate(
        ADAGRAD,
        params0(),
        logistic,
        shards(1),
        n_workers=1,
        steps=60,
        batch_size=8,
        seed=3,
        read_delay=4,
    )
    assert not bitwise(result.params, plain_run(tx, shards(1)[0], 60, 8, 3))
    assert result.telemetry.delays == {0: 1, 1: 1, 2: 1, 3: 1, 4: 56}


def test_async_easgd_with_alpha_zero_gives_independent_workers():
    tx = gradopt.sgd(0.5)
    result = gd.simulate(
        gd.async_easgd(tx, alpha=0.0, tau=2),
        params0(),
        logistic,
        shards(3),
        n_workers=3,
        steps=20,
        batch_size=8,
        seed=1,
    )
    grad_step = jax.jit(lambda p, s, x, y: _tx_step(tx, p, s, x, y))
    for i in range(3):
        sampler = BatchSampler(shards(3)[i], 8, 1, i)
        p, s = params0(), tx.init(params0())
        for _ in range(20):
            p, s = grad_step(p, s, *sampler.next())
        assert bitwise(result.workers[i], p)
    assert bitwise(result.params, params0())  # the center never moved
    assert result.telemetry.pushes == [10, 10, 10]


def _tx_step(tx, p, s, x, y):
    u, s = tx.update(jax.grad(logistic)(p, x, y), s, p)
    return gradopt.apply_updates(p, u), s


def test_checkpoint_and_resume_equal_one_long_run():
    algo = ADAGRAD
    data = shards(1)
    full = gd.simulate(algo, params0(), logistic, data, n_workers=1, steps=20, n_shards=2)
    half = gd.simulate(algo, params0(), logistic, data, n_workers=1, steps=10, n_shards=2)
    rest = gd.simulate(
        algo,
        params0(),
        logistic,
        data,
        n_workers=1,
        steps=10,
        n_shards=2,
        resume=half.checkpoint,
    )
    assert bitwise(rest.params, full.params)
    assert rest.checkpoint.clocks == [20, 20]


def test_telemetry_counts_every_push_and_the_run_is_reproducible():
    algo = gd.downpour(gradopt.adagrad(0.1), n_fetch=2, n_push=3)
    kwargs = dict(n_workers=4, steps=12, batch_size=4, seed=5, speeds=[1, 1, 2, 4])
    a = gd.simulate(algo, params0(), logistic, shards(4), **kwargs)
    b = gd.simulate(algo, params0(), logistic, shards(4), **kwargs)
    assert a.telemetry == b.telemetry and bitwise(a.params, b.params)
    assert a.telemetry.pushes == [4, 4, 4, 4]
    assert sum(a.telemetry.delays.values()) == 16
    assert a.telemetry.mean_delay() > 0


def test_warm_start_runs_worker_zero_alone_first():
    algo = gd.downpour(gradopt.sgd(0.1))
    res = gd.simulate(
        algo, params0(), logistic, shards(2), n_workers=2, steps=5, warm_start=5, seed=0
    )
    # worker 0's five pushes all happen before worker 1 reads: no stale push from worker 0
    assert res.telemetry.pushes == [5, 5]
    assert res.telemetry.delays.get(0, 0) >= 5


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: gd.downpour(gradopt.sgd(0.1), n_fetch=0), "n_fetch"),
        (lambda: gd.downpour(gradopt.sgd(0.1), n_push=0), "n_push"),
        (lambda: gd.async_easgd(gradopt.sgd(0.1), alpha=0.1, tau=0), "tau"),
        (lambda: gd.async_eamsgd(0.1, alpha=0.1, tau=-1), "tau"),
        (lambda: gd.async_easgd(gradopt.sgd(0.1), alpha=-0.1), "alpha"),
        (lambda: gd.delay_tolerant_adagrad(0.1, 0.0, 0.0), "initial_accumulator_value"),
        (
            lambda: gd.simulate(
                gd.downpour(gradopt.sgd(0.1)),
                params0(),
                logistic,
                shards(2),
                n_workers=0,
                steps=1,
            ),
            "n_workers",
        ),
        (
            lambda: gd.simulate(
                gd.downpour(gradopt.sgd(0.1)),
                params0(),
                logistic,
                shards(2),
                n_workers=3,
                steps=1,
            ),
            "n_workers",
        ),
        (
            lambda: gd.simulate(
                gd.downpour(gradopt.sgd(0.1)),
                params0(),
                logistic,
                shards(1),
                n_workers=1,
                steps=1,
                n_shards=3,
            ),
            "n_shards",
        ),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(build, name):
    with pytest.raises(ValueError, match=name):
        build()


def test_a_non_transform_is_a_type_error():
    with pytest.raises(TypeError, match="tx must be a gradient transformation"):
        gd.downpour(lambda g: g)
    with pytest.raises(TypeError, match="tx must be a gradient transformation"):
        gd.async_easgd("sgd", alpha=0.1)
    with pytest.raises(TypeError, match="algorithm"):
        gd.simulate(gradopt.sgd(0.1), params0(), logistic, shards(1), n_workers=1, steps=1)
