"""The asynchronous algorithms on Ray: a local cluster started and stopped by this module.

Every call is bounded (``run_ray(timeout=...)``, ``ray.get(timeout=...)``) and an
alarm fails the module if it ever hangs; the cluster is shut down at the end.
"""

import os
import signal
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt import distributed as gd

ray = pytest.importorskip("ray")

# Ray starts its daemons with fork + exec; JAX warns about any fork once it has started.
FORK_WARNING = r"os\.fork\(\) was called"
pytestmark = pytest.mark.filterwarnings(f"ignore:{FORK_WARNING}:RuntimeWarning")

RNG = np.random.default_rng(0)
W_TRUE = RNG.normal(size=6).astype(np.float32)
X = RNG.normal(size=(400, 6)).astype(np.float32)
Y = (X @ W_TRUE + 0.3 * RNG.normal(size=400) > 0).astype(np.float32)


def logistic(p, x, y):
    if x.shape[1] == 7:  # worker data that kills its process (traced once, on the worker)
        os._exit(3)
    z = x @ p["w"] + p["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def accuracy(p):
    return float(np.mean(((X @ np.asarray(p["w"]) + np.asarray(p["b"])) > 0) == (Y > 0)))


def params0():
    return {"w": jnp.zeros(6, jnp.float32), "b": jnp.zeros((), jnp.float32)}


SHARDS = [(X[i::2], Y[i::2]) for i in range(2)]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    def hang(signum, frame):
        raise TimeoutError("the Ray tests took more than 240 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(240)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", FORK_WARNING, RuntimeWarning)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    "algorithm",
    [
        pytest.param(gd.downpour(gradopt.adagrad(0.2), n_fetch=2, n_push=2), id="downpour-adagrad"),
        # the same Ray transport again (the simulator tests cover EAMSGD's rule): opt-in
        pytest.param(
            gd.async_eamsgd(0.2, momentum=0.5, alpha=0.2, tau=2),
            id="eamsgd",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_ray_reaches_the_accuracy_of_the_simulator(algorithm):
    kwargs = dict(n_workers=2, steps=60, batch_size=16, seed=1, n_shards=2)
    sim = gd.simulate(algorithm, params0(), logistic, SHARDS, **kwargs)
    real = gd.run_ray(
        algorithm, params0(), logistic, SHARDS, eval_fn=accuracy, timeout=120, **kwargs
    )
    assert accuracy(sim.params) > 0.85
    assert abs(accuracy(real.params) - accuracy(sim.params)) <= 0.05
    pushes = 60 // (2 if algorithm.name == "async_eamsgd" else algorithm.n_push)
    assert real.telemetry.pushes == [pushes, pushes]
    assert sum(real.telemetry.delays.values()) == 2 * pushes
    assert real.history and real.history[-1]["metric"] == accuracy(real.params)
    assert real.checkpoint.clocks == [2 * pushes, 2 * pushes]


def test_a_worker_that_raises_fails_the_run_with_its_error():
    bad = [SHARDS[0], (np.ones((10, 5), np.float32), np.ones(10, np.float32))]
    with pytest.raises(gd.WorkerFailedError, match="worker 1 failed") as info:
        gd.run_ray(
            gd.downpour(gradopt.sgd(0.1)),
            params0(),
            logistic,
            bad,
            n_workers=2,
            steps=400,
            batch_size=8,
            timeout=120,
        )
    assert info.value.worker == 1
    assert "dot_general" in str(info.value) or "shape" in str(info.value).lower()
    server = info.value.result  # the server's state, intact, and resumable
    assert np.all(np.isfinite(server.params["w"]))
    assert server.telemetry.pushes[1] == 0
    resumed = gd.simulate(
        gd.downpour(gradopt.sgd(0.1)),
        params0(),
        logistic,
        SHARDS,
        n_workers=2,
        steps=2,
        n_shards=2,
        resume=server.checkpoint,
    )
    assert resumed.checkpoint.clocks[0] == server.checkpoint.clocks[0] + 4


def test_a_worker_that_dies_is_dropped_when_asked():
    dying = [SHARDS[0], (np.ones((10, 7), np.float32), np.ones(10, np.float32))]
    result = gd.run_ray(
        gd.downpour(gradopt.sgd(0.1)),
        params0(),
        logistic,
        dying,
        n_workers=2,
        steps=30,
        batch_size=8,
        on_failure="continue",
        timeout=120,
    )
    assert result.telemetry.failed == [1]
    assert result.telemetry.pushes == [30, 0]
    assert accuracy(result.params) > 0.8
