"""gradopt.compat.keras against Keras 3.15.1: the optimizers and wrappers of issue 16 and
the arguments every Keras optimizer shares.

The references are trajectories recorded from Keras (torch backend; JAX for
ScheduleFreeAdamW) by
``tests/fixtures/record_keras.py`` on the problem of ``record_optimizers.py`` (see
``tests/fixtures/README.md``); Keras is not imported here. Every configuration is
rebuilt with the same arguments, fed the same 200 float32 gradients, and compared
at the recorded steps to ``rtol=2e-5`` plus 8 float32 ulps of each coordinate's
largest recorded magnitude.
"""

from __future__ import annotations

import inspect
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt.compat import keras as keras_compat

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
META = json.loads((FIXTURES / "keras.json").read_text())
with np.load(FIXTURES / "keras.npz") as _npz:
    ARRAYS = {name: _npz[name] for name in _npz.files}
with np.load(FIXTURES / "optimizers.npz") as _npz:
    PROBLEM = {name: _npz[name] for name in _npz.files if not name.startswith("config")}
NUM_LEAVES = 3
RECORDED = np.asarray(json.loads((FIXTURES / "optimizers.json").read_text())["recorded_steps"]) - 1
RTOL = 2e-5
ULPS = 8

FUNCTIONS = {
    "SGD": keras_compat.sgd,
    "Adagrad": keras_compat.adagrad,
    "RMSprop": keras_compat.rmsprop,
    "Adam": keras_compat.adam,
    "AdamW": keras_compat.adamw,
    "Nadam": keras_compat.nadam,
    "Ftrl": keras_compat.ftrl,
    "Lion": keras_compat.lion,
    "Lamb": keras_compat.lamb,
    "Adafactor": keras_compat.adafactor,
    "Muon": keras_compat.muon,
    "ScheduleFreeAdamW": keras_compat.schedule_free_adamw,
    "MultiOptimizer": keras_compat.multi_optimizer,
    "LossScaleOptimizer": keras_compat.loss_scale_optimizer,
    "OptimizerMap": keras_compat.optimizer_map,
}


def _exponential_keras(count, *, initial, rate):
    """Keras' ExponentialDecay(initial, decay_steps=1, decay_rate=rate), in float32."""
    t = jnp.asarray(count).astype(jnp.float32)
    return jnp.float32(initial) * jnp.power(jnp.float32(rate), t)


def _build(config):
    cls, kwargs, options = config["class"], dict(config["kwargs"]), config["options"]
    if "schedule" in options:
        kwargs["learning_rate"] = gradopt.Bound(
            _exponential_keras, initial=kwargs["learning_rate"], rate=options["schedule"]
        )
    if cls == "MultiOptimizer":
        default_cls, default_kwargs = options["default"]
        mapping = {k: FUNCTIONS[c](**kw) for k, (c, kw) in options["map"].items()}
        kwargs["optimizer_map"] = keras_compat.optimizer_map(
            FUNCTIONS[default_cls](**default_kwargs), mapping
        )
    if cls == "LossScaleOptimizer":
        inner_cls, inner_kwargs = options["inner"]
        kwargs["inner_optimizer"] = FUNCTIONS[inner_cls](**inner_kwargs)
    return FUNCTIONS[cls](**kwargs)


def _names(config):
    return config["options"].get("names", META["names"])


def _run(config, opt):
    """Weights, EMA and schedule-free ``x`` after every step (one ``lax.scan``)."""
    names = _names(config)
    init = {n: jnp.asarray(PROBLEM[f"init_{i}"]) for i, n in enumerate(names)}
    grads = {n: jnp.asarray(PROBLEM[f"grads_{i}"]) for i, n in enumerate(names)}
    overflow = np.zeros(len(PROBLEM["grads_0"]), bool)
    overflow[META["overflow_steps"]] = True
    loss_scaled = config["class"] == "LossScaleOptimizer"
    averaged = bool(config["kwargs"].get("use_ema"))
    schedule_free = config["class"] == "ScheduleFreeAdamW"

    def step(carry, inputs):
        params, state = carry
        g, bad = inputs
        extra = {}
        if loss_scaled:  # the user's loss is scaled: the gradients arrive times the scale
            g = jax.tree.map(lambda x: x * state.scale, g)
            g = {
                **g,
                names[0]: g[names[0]].at[0, 0].set(jnp.where(bad, jnp.inf, g[names[0]][0, 0])),
            }
            extra["scale"] = state.scale  # the scale before the step
        updates, state = opt.update(g, state, params)
        params = gradopt.apply_updates(params, updates)
        if loss_scaled:
            extra["scale"] = state.scale
        if averaged:
            extra["avg"] = gradopt.averaged_params(state)
        if schedule_free:
            extra["x"] = keras_compat.schedule_free_eval_params(
                params, state, beta_1=config["kwargs"].get("beta_1", 0.9)
            )
        return (params, state), (params, extra)

    _, (trajectory, extra) = jax.lax.scan(step, (init, opt.init(init)), (grads, overflow))
    return trajectory, extra


@pytest.fixture(scope="module")
def results():
    """Every configuration in one compiled program."""
    opts = [_build(c) for c in META["configs"]]

    @jax.jit
    def run_all():
        return [_run(c, o) for c, o in zip(META["configs"], opts, strict=True)]

    return {
        c["id"]: jax.tree.map(np.asarray, r)
        for c, r in zip(META["configs"], run_all(), strict=True)
    }


def _mismatch(key, got, init=None):
    """The worst coordinate outside the tolerance, described, or None if all match.

    The ulps are of each coordinate's largest magnitude over the recorded steps and
    the initial value: a rule that computes the new weights (FTRL solves for them,
    schedule-free AdamW interpolates) still returns them as ``w_new - w``, which
    ``apply_updates`` adds back, rounding at the scale of ``w``.
    """
    want = ARRAYS[key]
    magnitude = np.max(np.abs(want), axis=0, keepdims=True)
    if init is not None:
        magnitude = np.maximum(magnitude, np.abs(init))
    atol = ULPS * np.finfo(np.float32).eps * np.maximum(magnitude, 1e-30)
    excess = np.abs(got - want) - (RTOL * np.abs(want) + atol)
    if np.all(np.isfinite(got)) and np.max(excess) <= 0:
        return None
    index = np.unravel_index(np.argmax(np.nan_to_num(excess, nan=np.inf)), want.shape)
    return f"{key} at {index}: gradopt {got[index]!r}, Keras {want[index]!r}"


def _ids(config):
    return f"{config['id']}-{config['class']}"


@pytest.mark.parametrize("config", META["configs"], ids=_ids)
def test_reproduces_recorded_trajectory(config, results):
    trajectory, extra = results[config["id"]]
    names = _names(config)
    problems = []
    for i, n in enumerate(names):
        init = PROBLEM[f"init_{i}"]
        problems.append(_mismatch(f"{config['id']}_{i}", trajectory[n][RECORDED], init))
        if "avg" in extra:
            problems.append(_mismatch(f"{config['id']}_avg_{i}", extra["avg"][n][RECORDED]))
        if "x" in extra:
            problems.append(_mismatch(f"{config['id']}_x_{i}", extra["x"][n][RECORDED], init))
    if "scale" in extra:
        np.testing.assert_array_equal(extra["scale"], ARRAYS[f"{config['id']}_scale"])
    problems = [p for p in problems if p]
    assert not problems, f"{config['class']}({config['kwargs']}): {problems[0]}"


def _config(cls, **kwargs):
    for config in META["configs"]:
        if config["class"] == cls and config["kwargs"] == kwargs:
            return config
    raise LookupError(f"no recorded {cls}({kwargs})")


def test_comparison_rejects_other_conventions():
    """Variants one convention away from a recorded configuration must fail the comparison."""
    cases = [
        (
            _config("Adam", learning_rate=0.01, clipnorm=0.5),
            keras_compat.adam(learning_rate=0.01, global_clipnorm=0.5),
        ),
        (
            _config("Adam", learning_rate=0.01, gradient_accumulation_steps=3),
            gradopt.accumulate(keras_compat.adam(learning_rate=0.01), 3, reduction="sum"),
        ),
        (_config("Lamb"), keras_compat.adam()),
        (_config("Adafactor"), keras_compat.adafactor(beta_2_decay=-0.7)),
        (_config("Muon"), keras_compat.muon(rms_rate=None)),
        (_config("Ftrl"), keras_compat.ftrl(learning_rate_power=-0.49)),
    ]

    @jax.jit
    def run_all():
        return [_run(c, o)[0] for c, o in cases]

    for (config, _), trajectory in zip(cases, run_all(), strict=True):
        names = _names(config)
        problems = [
            _mismatch(f"{config['id']}_{i}", np.asarray(trajectory[n])[RECORDED])
            for i, n in enumerate(names)
        ]
        assert any(problems), config


def _signature(fn):
    return [
        {
            "name": p.name,
            "keyword_only": p.kind is inspect.Parameter.KEYWORD_ONLY,
            "default": repr(p.default),
        }
        for p in inspect.signature(fn).parameters.values()
    ]


@pytest.mark.parametrize("cls", sorted(META["signatures"]))
def test_arguments_and_defaults_match_keras(cls):
    assert _signature(FUNCTIONS[cls]) == META["signatures"][cls]


def test_fixture_versions():
    assert META["versions"]["keras"] == "3.15.1"
    assert META["versions"]["keras_backend"] == "torch"
    for config in META["configs"]:  # ScheduleFreeAdamW on JAX: see record_keras.py
        want = "jax" if config["class"] == "ScheduleFreeAdamW" else "torch"
        assert config["backend"] == want


def test_sgd_accepts_nesterov_with_zero_momentum():
    assert keras_compat.sgd(momentum=0.0, nesterov=True) == keras_compat.sgd()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: keras_compat.adam(clipnorm=1.0, clipvalue=1.0), "only one of"),
        (lambda: keras_compat.sgd(gradient_accumulation_steps=1), "gradient_accumulation_steps"),
        (lambda: keras_compat.sgd(use_ema=True, ema_momentum=1.5), "ema_momentum"),
        (lambda: keras_compat.sgd(use_ema=True, ema_overwrite_frequency=-2), "ema_overwrite"),
        (
            lambda: keras_compat.adam(
                use_ema=True, ema_overwrite_frequency=2, gradient_accumulation_steps=2
            ),
            "not supported",
        ),
        (lambda: keras_compat.ftrl(initial_accumulator_value=-0.1), "initial_accumulator_value"),
        (lambda: keras_compat.ftrl(learning_rate_power=0.5), "learning_rate_power"),
        (lambda: keras_compat.ftrl(l1_regularization_strength=-1.0), "l1_regularization"),
        (lambda: keras_compat.ftrl(l2_regularization_strength=-1.0), "l2_regularization"),
        (lambda: keras_compat.ftrl(l2_shrinkage_regularization_strength=-1.0), "l2_shrinkage"),
        (lambda: keras_compat.lion(beta_1=0.0), "beta_1"),
        (lambda: keras_compat.lion(beta_1=1.5), "beta_1"),
        (lambda: keras_compat.muon(ns_steps=-1), "ns_steps"),
        (lambda: keras_compat.schedule_free_adamw(warmup_steps=-1), "warmup_steps"),
        (lambda: keras_compat.loss_scale_optimizer(keras_compat.adam(), 0.0), "initial_scale"),
        (lambda: keras_compat.optimizer_map(keras_compat.adam(), {1: keras_compat.sgd()}), "keys"),
    ],
)
def test_invalid_arguments_are_rejected(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_no_loss_scale_or_multi_optimizer_inside_a_multi_optimizer():
    inner = keras_compat.multi_optimizer(keras_compat.optimizer_map(keras_compat.adam()))
    for bad in (keras_compat.loss_scale_optimizer(keras_compat.adam()), inner):
        with pytest.raises(ValueError, match="Keras refuses"):
            keras_compat.optimizer_map(keras_compat.adam(), {"w": bad})
        tx = keras_compat.multi_optimizer(lambda path, bad=bad: bad)
        with pytest.raises(ValueError, match="Keras refuses"):
            tx.init({"w": jnp.ones(2)})


def test_optimizer_map_refuses_two_matching_patterns():
    selector = keras_compat.optimizer_map(
        keras_compat.adam(), {"dense/.*": keras_compat.sgd(), ".*/kernel": keras_compat.lion()}
    )
    assert selector("dense") == keras_compat.adam()
    with pytest.raises(ValueError, match="all match"):
        selector("dense/kernel")


def test_multi_optimizer_takes_a_function_of_the_path():
    """A callable selector gives the same optimizer as the equivalent map."""
    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    by_map = keras_compat.multi_optimizer(
        keras_compat.optimizer_map(keras_compat.adam(), {".*bias": keras_compat.sgd(0.1)})
    )
    by_function = keras_compat.multi_optimizer(
        lambda path: keras_compat.sgd(0.1) if path.endswith("bias") else keras_compat.adam()
    )
    a = by_map.update(grads, by_map.init(params), params)[0]
    b = by_function.update(grads, by_function.init(params), params)[0]
    np.testing.assert_array_equal(a["dense"]["bias"], b["dense"]["bias"])
    np.testing.assert_allclose(a["dense"]["bias"], -0.05)


@pytest.mark.parametrize("name", ["lamb", "adafactor", "muon"])
def test_leaves_with_no_entries_leave_the_other_leaves_alone(name):
    """A zero-size leaf (a norm or RMS over no entries: 0, not a reduction error or
    NaN) gets an empty update, and the other leaves the update they get without it."""
    build = getattr(keras_compat, name)
    full = {
        "w": jnp.asarray([[1.5, -2.0], [0.5, 3.0]]),
        "e": jnp.zeros((0, 2)),
        "e3": jnp.zeros((0, 2, 0), jnp.bfloat16),
    }
    grads = {"w": jnp.asarray([[0.25, -1.0], [2.0, 0.5]]), "e": full["e"], "e3": full["e3"]}
    tx = build(0.01)
    state = tx.init(full)
    for _ in range(2):
        updates, state = tx.update(grads, state, full)
    assert updates["e"].shape == (0, 2) and updates["e3"].shape == (0, 2, 0)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))
    alone = tx.init({"w": full["w"]})
    for _ in range(2):
        reference, alone = tx.update({"w": grads["w"]}, alone, {"w": full["w"]})
    np.testing.assert_array_equal(updates["w"], reference["w"])


@pytest.mark.parametrize("tree", [{}, [], [()]], ids=["dict", "list", "nested"])
def test_multi_optimizer_takes_a_tree_without_leaves(tree):
    """No leaf, no group: an empty state and the (empty) updates back, eager and jitted."""
    tx = keras_compat.multi_optimizer(keras_compat.optimizer_map(keras_compat.adam()))
    state = tx.init(tree)
    assert state == gradopt.PartitionState({})
    updates, new_state = jax.jit(tx.update)(tree, state, tree)
    assert updates == tree and new_state == state


def _finite(tree) -> bool:
    return all(bool(np.isfinite(np.asarray(x, np.float64)).all()) for x in jax.tree.leaves(tree))


def test_ftrl_at_a_zero_learning_rate_takes_no_step_and_stays_finite():
    # Keras' Ftrl divides by the learning rate (NaN at 0); gradopt skips the step.
    params = {"w": jnp.array([-0.08, -2.3, 4.7], jnp.bfloat16)}
    opt = keras_compat.ftrl(learning_rate=0.0)
    state = opt.init(params)
    for g in ([1e-38, -9.0, -6.3], [-5.2, -0.05, 1.1]):
        updates, state = opt.update({"w": jnp.array(g, jnp.bfloat16)}, state, params)
        np.testing.assert_array_equal(np.asarray(updates["w"], np.float32), 0.0)
    assert _finite(state)
    accum, linear = [x for x in jax.tree.leaves(state) if jnp.shape(x) == (3,)]
    np.testing.assert_array_equal(np.asarray(accum), np.float32(0.1))  # slots kept
    np.testing.assert_array_equal(np.asarray(linear), 0.0)


def test_keras_rule_deltas_saturate_at_the_leaf_dtype_max():
    # A strong l2 shrinkage solves for a new weight far beyond float16's range: the
    # update saturates at -65504 instead of becoming -inf.
    params = {"w": jnp.array([1.0], jnp.float16)}
    opt = keras_compat.ftrl(learning_rate=1.0, l2_shrinkage_regularization_strength=1e5)
    updates, _ = opt.update({"w": jnp.array([1.0], jnp.float16)}, opt.init(params), params)
    assert float(updates["w"][0]) == -float(jnp.finfo(jnp.float16).max)
