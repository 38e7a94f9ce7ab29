"""gradopt.compat.swa_utils against torch.optim.swa_utils 2.13 (``fixtures/record_swa.py``)."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt.compat import swa_utils
from gradopt.compat import torch as torch_compat

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
META = json.loads((FIXTURES / "swa.json").read_text())
with np.load(FIXTURES / "swa.npz") as _npz:
    ARRAYS = {name: _npz[name] for name in _npz.files}
with np.load(FIXTURES / "optimizers.npz") as _npz:
    PROBLEM = {name: _npz[name] for name in _npz.files if not name.startswith("config")}
RECORDED = np.asarray(json.loads((FIXTURES / "optimizers.json").read_text())["recorded_steps"]) - 1
OPTIMIZERS = {"SGD": torch_compat.sgd, "Adam": torch_compat.adam}


def _build(recipe):
    name, kwargs = recipe["optimizer"]
    kwargs = dict(kwargs)
    if "swalr" in recipe:
        kwargs["lr"] = swa_utils.swalr(kwargs["lr"], **recipe["swalr"], start=recipe["start"])
    avg_fn = (
        swa_utils.get_ema_multi_avg_fn(recipe["decay"])
        if recipe["average"] == "ema"
        else swa_utils.get_swa_multi_avg_fn()
    )
    return swa_utils.averaged_model(
        OPTIMIZERS[name](**kwargs), avg_fn, start=recipe["start"], every=recipe["every"]
    )


@pytest.fixture(scope="module")
def results():
    init = tuple(jnp.asarray(PROBLEM[f"init_{i}"]) for i in range(3))
    grads = tuple(jnp.asarray(PROBLEM[f"grads_{i}"]) for i in range(3))
    opts = {name: _build(recipe) for name, recipe in META["recipes"].items()}

    def run(opt):
        def step(carry, g):
            params, state = carry
            updates, state = opt.update(g, state, params)
            params = gradopt.apply_updates(params, updates)
            return (params, state), (params, gradopt.averaged_params(state))

        return jax.lax.scan(step, (init, opt.init(init)), grads)[1]

    out = jax.jit(lambda: {name: run(opt) for name, opt in opts.items()})()
    return jax.tree.map(np.asarray, out)


@pytest.mark.parametrize("name", sorted(META["recipes"]))
def test_recipe_reproduces_torch(name, results):
    weights, averages = results[name]
    for i in range(3):
        for key, got in ((f"{name}_{i}", weights[i]), (f"{name}_avg_{i}", averages[i])):
            want = ARRAYS[key]
            atol = 8 * np.finfo(np.float32).eps * np.max(np.abs(want), axis=0, keepdims=True)
            excess = np.abs(got[RECORDED] - want) - (2e-5 * np.abs(want) + atol)
            worst = np.unravel_index(np.argmax(excess), want.shape)
            assert np.max(excess) <= 0, f"{key} at {worst}: {got[RECORDED][worst]} vs {want[worst]}"


@pytest.mark.parametrize(
    "case", META["swalr"], ids=lambda c: f"{c['anneal_strategy']}-{c['anneal_epochs']}"
)
def test_swalr_rates(case):
    kwargs = {k: v for k, v in case.items() if k not in ("rates", "lr")}
    schedule = swa_utils.swalr(case["lr"], **kwargs)
    got = [float(schedule(jnp.asarray(k))) for k in range(len(case["rates"]))]
    np.testing.assert_allclose(got, case["rates"], rtol=1e-6)


def test_the_average_does_not_change_the_trajectory(results):
    """The model's own weights follow the plain optimizer (the EMA recipe is plain Adam)."""
    init = tuple(jnp.asarray(PROBLEM[f"init_{i}"]) for i in range(3))
    opt = torch_compat.adam(lr=0.01)
    params, state = init, opt.init(init)
    for t in range(10):
        g = tuple(jnp.asarray(PROBLEM[f"grads_{i}"][t]) for i in range(3))
        updates, state = opt.update(g, state, params)
        params = gradopt.apply_updates(params, updates)
    np.testing.assert_allclose(results["ema"][0][0][9], params[0], rtol=1e-6)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: swa_utils.get_ema_multi_avg_fn(1.5), ValueError, "decay"),
        (lambda: swa_utils.swalr(0.1, 0.05, anneal_epochs=-1), ValueError, "anneal_epochs"),
        (lambda: swa_utils.swalr(0.1, 0.05, anneal_strategy="exp"), ValueError, "anneal_strategy"),
        (
            lambda: swa_utils.averaged_model(torch_compat.sgd(), lambda a, b, n: a),
            TypeError,
            "multi_avg_fn",
        ),
    ],
)
def test_invalid_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()
