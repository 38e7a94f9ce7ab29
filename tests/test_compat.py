"""gradopt.compat.torch and gradopt.compat.keras against the real libraries.

The references are trajectories recorded from torch.optim 2.13.0 and Keras
3.15.1 by ``tests/fixtures/record_optimizers.py`` (see
``tests/fixtures/README.md``); neither library is imported here. Every recorded
configuration is rebuilt with the same keyword arguments, fed the same 200
gradients from the same float32 initial values, and compared step by step.
"""

from __future__ import annotations

import inspect
import json
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt.compat import keras as keras_compat
from gradopt.compat import torch as torch_compat

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
META = json.loads((FIXTURES / "optimizers.json").read_text())
with np.load(FIXTURES / "optimizers.npz") as _npz:
    ARRAYS = {name: _npz[name] for name in _npz.files}
NUM_LEAVES = len(META["shapes"])
RECORDED = np.asarray(META["recorded_steps"]) - 1

FUNCTIONS = {
    "torch": {
        "SGD": torch_compat.sgd,
        "Adagrad": torch_compat.adagrad,
        "Adadelta": torch_compat.adadelta,
        "RMSprop": torch_compat.rmsprop,
        "Adam": torch_compat.adam,
        "AdamW": torch_compat.adamw,
        "Adamax": torch_compat.adamax,
        "NAdam": torch_compat.nadam,
    },
    "keras": {
        "SGD": keras_compat.sgd,
        "Adagrad": keras_compat.adagrad,
        "Adadelta": keras_compat.adadelta,
        "RMSprop": keras_compat.rmsprop,
        "Adam": keras_compat.adam,
        "Adamax": keras_compat.adamax,
        "Nadam": keras_compat.nadam,
        "AdamW": keras_compat.adamw,
    },
}

# Arguments every Keras optimizer takes from its base class are mirrored too (issue 16):
# none is left out of the comparison of signatures.
KERAS_BASE_ARGS: set[str] = set()

RTOL = 1e-5
ULPS = 8  # absolute tolerance: this many float32 ulps of each coordinate's magnitude


def _exponential_torch(count, *, initial, rate):
    """``initial * rate**count`` as torch's ExponentialLR holds it (double, then float32)."""
    t = jnp.asarray(count).astype(jnp.float32)
    return initial * jnp.exp(t * float(np.log(rate)))


def _exponential_keras(count, *, initial, rate):
    """Keras' ExponentialDecay(initial, decay_steps=1, decay_rate=rate), in float32."""
    t = jnp.asarray(count).astype(jnp.float32)
    return jnp.float32(initial) * jnp.power(jnp.float32(rate), t)


def _kwargs(config):
    """The recorded keyword arguments (JSON turned torch's ``betas`` tuples into lists),
    with the decaying learning rate of a scheduled configuration as a schedule."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config["kwargs"].items()}
    if "lr_decay_rate" in config:
        name = "lr" if config["library"] == "torch" else "learning_rate"
        kwargs[name] = _decaying_rate(config["library"], kwargs[name], config["lr_decay_rate"])
    return kwargs


def _decaying_rate(library, initial, rate):
    fn = _exponential_torch if library == "torch" else _exponential_keras
    return gradopt.Bound(fn, initial=initial, rate=rate)


def _build(config):
    return FUNCTIONS[config["library"]][config["class"]](**_kwargs(config))


def _config(library, cls, lr_decay_rate=None, **kwargs):
    """The recorded configuration with exactly these keyword arguments."""
    for config in META["configs"]:
        if config.get("lr_decay_rate") != lr_decay_rate:
            continue
        if (config["library"], config["class"], config["kwargs"]) == (library, cls, kwargs):
            return config
    raise LookupError(f"no recorded configuration {library}.{cls}({kwargs})")


# Variants that each differ from a recorded configuration by one convention; the
# comparison must reject them (so the tolerance is tight enough to see conventions).
def _near_misses():
    return {
        "rmsprop eps inside the root": (
            _config("torch", "RMSprop"),
            gradopt.chain(
                gradopt.scale_by_rms(0.99, eps=1e-8, eps_inside_sqrt=True),
                gradopt.scale_by_learning_rate(0.01),
            ),
        ),
        "sgd dampening on the first step": (
            _config("torch", "SGD", lr=0.01, momentum=0.9, dampening=0.5),
            gradopt.chain(
                gradopt.trace(0.9, dampening=0.5, dampen_first_step=True),
                gradopt.scale_by_learning_rate(0.01),
            ),
        ),
        "keras adam with torch's eps": (
            _config("keras", "Adam", beta_1=0.8, beta_2=0.99, epsilon=1e-3),
            torch_compat.adam(lr=0.001, betas=(0.8, 0.99), eps=1e-3),
        ),
        "keras nadam with torch's momentum_decay": (
            _config("keras", "Nadam"),
            torch_compat.nadam(lr=0.001, eps=1e-7),
        ),
        "torch adamax with eps outside the max": (
            _config("torch", "Adamax", betas=[0.8, 0.95], eps=1e-3, weight_decay=0.01),
            gradopt.chain(
                gradopt.add_decayed_weights(0.01),
                gradopt.chain(
                    gradopt.ema(0.8),
                    gradopt.bias_correction(0.8),
                    gradopt.scale_by_max_norm(0.95, eps=1e-3, eps_inside_max=False),
                    gradopt.scale_by_learning_rate(0.002),
                ),
            ),
        ),
        "keras sgd with the decaying rate outside the velocity": (
            _config("keras", "SGD", 0.98, learning_rate=0.01, momentum=0.9),
            torch_compat.sgd(lr=_decaying_rate("keras", 0.01, 0.98), momentum=0.9),
        ),
        "torch rmsprop with the decaying rate inside the velocity": (
            _config("torch", "RMSprop", 0.98, lr=0.01, momentum=0.9),
            keras_compat.rmsprop(
                learning_rate=_decaying_rate("torch", 0.01, 0.98),
                rho=0.99,
                epsilon=1e-8,
                momentum=0.9,
            ),
        ),
        "adamw decay without the learning rate": (
            _config("torch", "AdamW", lr=0.01, weight_decay=0.1, amsgrad=True),
            torch_compat.adam(lr=0.01, weight_decay=0.1, amsgrad=True),
        ),
    }


def _run(opt, init, grads):
    """Parameters after every one of the 200 steps, one ``lax.scan``."""

    def step(carry, g):
        params, state = carry
        updates, state = opt.update(g, state, params)
        params = gradopt.apply_updates(params, updates)
        return (params, state), params

    _, trajectory = jax.lax.scan(step, (init, opt.init(init)), grads)
    return trajectory


@pytest.fixture(scope="module")
def trajectories():
    """Every recorded configuration and every near miss, run in one compiled program."""
    init = tuple(jnp.asarray(ARRAYS[f"init_{i}"]) for i in range(NUM_LEAVES))
    grads = tuple(jnp.asarray(ARRAYS[f"grads_{i}"]) for i in range(NUM_LEAVES))
    names = [c["id"] for c in META["configs"]]
    opts = [_build(c) for c in META["configs"]]
    misses = _near_misses()
    names += list(misses)
    opts += [opt for _, opt in misses.values()]

    @jax.jit
    def run_all(init, grads):
        return [_run(opt, init, grads) for opt in opts]

    out = run_all(init, grads)
    return {
        name: [np.asarray(leaf)[RECORDED] for leaf in traj]
        for name, traj in zip(names, out, strict=True)
    }


def _mismatch(config_id, got):
    """A description of the worst coordinate outside the tolerance, or None if all match."""
    worst = None
    for i in range(NUM_LEAVES):
        want = ARRAYS[f"{config_id}_{i}"]
        magnitude = np.max(np.abs(want), axis=0, keepdims=True)
        atol = ULPS * np.finfo(np.float32).eps * np.maximum(magnitude, 1e-30)
        excess = np.abs(got[i] - want) - (RTOL * np.abs(want) + atol)
        if np.all(np.isfinite(got[i])) and np.max(excess) <= 0:
            continue
        step, *index = np.unravel_index(np.argmax(np.nan_to_num(excess, nan=np.inf)), want.shape)
        description = (
            f"leaf {i} {tuple(int(k) for k in index)} after step {RECORDED[step] + 1}: "
            f"gradopt {got[i][(step, *index)]!r}, recorded {want[(step, *index)]!r}"
        )
        worst = worst or description
    return worst


@pytest.mark.parametrize(
    "config",
    META["configs"],
    ids=[
        f"{c['library']}-{c['class']}-{c['id']}{'-scheduled' if 'lr_decay_rate' in c else ''}"
        for c in META["configs"]
    ],
)
def test_reproduces_recorded_trajectory(config, trajectories):
    got = trajectories[config["id"]]
    for leaf in got:
        assert leaf.dtype == np.float32
    problem = _mismatch(config["id"], got)
    assert problem is None, f"{config['library']}.{config['class']}({config['kwargs']}): {problem}"


@pytest.mark.parametrize("name", list(_near_misses()))
def test_comparison_rejects_other_conventions(name, trajectories):
    config, _ = _near_misses()[name]
    assert _mismatch(config["id"], trajectories[name]) is not None


def _signature(fn):
    return [
        {
            "name": p.name,
            "keyword_only": p.kind is inspect.Parameter.KEYWORD_ONLY,
            "default": repr(p.default),
        }
        for p in inspect.signature(fn).parameters.values()
    ]


@pytest.mark.parametrize(
    ("library", "cls"), [(lib, cls) for lib, classes in FUNCTIONS.items() for cls in classes]
)
def test_arguments_and_defaults_match_the_library(library, cls):
    recorded = META["signatures"][library][cls]
    if library == "keras":
        recorded = [p for p in recorded if p["name"] not in KERAS_BASE_ARGS]
    assert _signature(FUNCTIONS[library][cls]) == recorded


def test_every_recorded_class_is_mirrored():
    for library, classes in META["signatures"].items():
        assert set(classes) == set(FUNCTIONS[library])


def test_fixture_versions():
    versions = META["versions"]
    assert versions["torch"].startswith("2.13.0")
    assert versions["keras"] == "3.15.1"
    assert versions["keras_backend"] == "torch"


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: torch_compat.sgd(lr=-0.1), "lr"),
        (lambda: torch_compat.sgd(momentum=-0.5), "momentum"),
        (lambda: torch_compat.sgd(nesterov=True), "nesterov"),
        (lambda: torch_compat.sgd(momentum=0.9, dampening=0.1, nesterov=True), "dampening"),
        (lambda: torch_compat.sgd(weight_decay=-1.0), "weight_decay"),
        (lambda: torch_compat.adagrad(lr_decay=-0.1), "lr_decay"),
        (lambda: torch_compat.adagrad(initial_accumulator_value=-1.0), "initial_accumulator"),
        (lambda: torch_compat.adadelta(rho=1.5), "rho"),
        (lambda: torch_compat.rmsprop(alpha=-0.9), "alpha"),
        (lambda: torch_compat.adam(betas=(1.0, 0.999)), r"betas\[0\]"),
        (lambda: torch_compat.adamw(betas=(0.9, -0.1)), r"betas\[1\]"),
        (lambda: torch_compat.adamax(eps=-1e-8), "eps"),
        (lambda: torch_compat.nadam(momentum_decay=-0.004), "momentum_decay"),
        (lambda: keras_compat.sgd(momentum=1.5), "momentum"),
        (lambda: keras_compat.sgd(learning_rate=-0.01), "learning_rate"),
        (lambda: keras_compat.adam(weight_decay=-0.1), "weight_decay"),
        (lambda: keras_compat.adamw(weight_decay=None), "weight_decay"),
        (
            lambda: keras_compat.sgd(learning_rate=lambda t: 0.1, momentum=0.9, weight_decay=0.01),
            "constant learning_rate",
        ),
    ],
)
def test_invalid_arguments_are_rejected(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_betas_must_be_a_pair():
    with pytest.raises(TypeError, match="betas"):
        torch_compat.adam(betas=0.9)


def test_equal_configurations_are_equal():
    assert torch_compat.adamw(lr=0.01) == torch_compat.adamw(lr=0.01)
    assert keras_compat.adam(weight_decay=0.01) == keras_compat.adam(weight_decay=0.01)
    assert torch_compat.adagrad(lr_decay=0.1) == torch_compat.adagrad(lr_decay=0.1)
    assert torch_compat.adam(lr=0.01) != torch_compat.adam(lr=0.02)


def test_traced_learning_rates_under_vmap():
    """Built inside ``jax.vmap`` over learning rates, each lane follows the trajectory of
    the optimizer built with that rate as a number (the recorded-trajectory tests fix
    concrete values; this checks traced ones). One compiled program for all cases."""
    builds = [
        lambda lr: torch_compat.adamw(lr=lr, weight_decay=0.1),
        lambda lr: torch_compat.adagrad(lr=lr, lr_decay=0.01, weight_decay=0.01),
        lambda lr: keras_compat.sgd(learning_rate=lr, momentum=0.9, nesterov=True),
        lambda lr: keras_compat.adam(learning_rate=lr, weight_decay=0.01),
    ]
    init = tuple(jnp.asarray(ARRAYS[f"init_{i}"]) for i in range(NUM_LEAVES))
    grads = tuple(jnp.asarray(ARRAYS[f"grads_{i}"][:10]) for i in range(NUM_LEAVES))
    rates = (1e-3, 1e-2)

    @jax.jit
    def both(traced_rates):
        swept = [jax.vmap(lambda lr, b=b: _run(b(lr), init, grads))(traced_rates) for b in builds]
        loop = [[_run(b(lr), init, grads) for lr in rates] for b in builds]
        return swept, loop

    swept, loop = both(jnp.asarray(rates, jnp.float32))
    for lanes, singles in zip(swept, loop, strict=True):
        for k, single in enumerate(singles):
            lane = jax.tree.map(lambda x, k=k: x[k], lanes)
            chex.assert_trees_all_close(lane, single, rtol=1e-5, atol=1e-6)
        assert not np.allclose(np.asarray(lanes[0][0, -1]), np.asarray(lanes[0][1, -1]))
