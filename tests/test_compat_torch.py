"""The torch.optim optimizers of issue 16 against trajectories recorded from torch 2.13.

References: ``tests/fixtures/torch_optimizers.{json,npz}``, written by
``tests/fixtures/record_torch_optimizers.py`` (see ``tests/fixtures/README.md``);
torch is not imported here. Every recorded configuration is rebuilt with the
same keyword arguments and replayed in float32: the same gradients for the
fixed-gradient problems, the same loss for LBFGS.
"""

from __future__ import annotations

import inspect
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt.compat import _torch_muon
from gradopt.compat import torch as torch_compat

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
META = json.loads((FIXTURES / "torch_optimizers.json").read_text())
with np.load(FIXTURES / "torch_optimizers.npz") as _npz:
    ARRAYS = {name: _npz[name] for name in _npz.files}
RECORDED = np.asarray(META["recorded_steps"]) - 1
FUNCTIONS = {
    "ASGD": torch_compat.asgd,
    "Rprop": torch_compat.rprop,
    "RAdam": torch_compat.radam,
    "Adafactor": torch_compat.adafactor,
    "SparseAdam": torch_compat.sparse_adam,
    "Muon": torch_compat.muon,
}
GRADIENT_PROBLEMS = ("fixed", "sparse", "matrices")

RTOL = 2e-5
ULPS = 8  # absolute tolerance: this many float32 ulps of each coordinate's magnitude


def _exponential_torch(count, *, initial, rate):
    """``initial * rate**count`` as torch's ExponentialLR holds it (double, then float32)."""
    t = jnp.asarray(count).astype(jnp.float32)
    return initial * jnp.exp(t * float(np.log(rate)))


def _kwargs(config):
    """The recorded keyword arguments (JSON turned tuples into lists); a decaying
    learning rate becomes the schedule ``step -> lr * rate**step``."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config["kwargs"].items()}
    if "lr_decay_rate" in config:
        kwargs["lr"] = gradopt.Bound(
            _exponential_torch, initial=kwargs["lr"], rate=config["lr_decay_rate"]
        )
    return kwargs


def _leaves(problem, kind):
    n = len(META["problems"][problem]["shapes"])
    return tuple(jnp.asarray(ARRAYS[f"{problem}_{kind}_{i}"]) for i in range(n))


def _run(opt, init, grads):
    """Parameters after every step, and the last state, in one ``lax.scan``."""

    def step(carry, g):
        params, state = carry
        updates, state = opt.update(g, state, params)
        params = gradopt.apply_updates(params, updates)
        return (params, state), params

    (_, state), trajectory = jax.lax.scan(step, (init, opt.init(init)), grads)
    return trajectory, state


def _configs(problem):
    return [c for c in META["configs"] if c["problem"] == problem]


@pytest.fixture(scope="module")
def gradient_runs():
    """Every fixed-gradient configuration: one compiled program per problem."""
    out = {}
    for problem in GRADIENT_PROBLEMS:
        configs = _configs(problem)
        opts = [FUNCTIONS[c["class"]](**_kwargs(c)) for c in configs]

        @jax.jit
        def run_all(init, grads, opts=opts):
            return [_run(opt, init, grads) for opt in opts]

        results = run_all(_leaves(problem, "init"), _leaves(problem, "grads"))
        for config, (trajectory, state) in zip(configs, results, strict=True):
            out[config["id"]] = ([np.asarray(x)[RECORDED] for x in trajectory], state)
    return out


def _mismatch(config_id, got):
    """The worst coordinate outside the tolerance, described, or None if all match."""
    for i, leaf in enumerate(got):
        want = ARRAYS[f"{config_id}_{i}"]
        magnitude = np.max(np.abs(want), axis=0, keepdims=True)
        atol = ULPS * np.finfo(np.float32).eps * np.maximum(magnitude, 1e-30)
        excess = np.abs(leaf - want) - (RTOL * np.abs(want) + atol)
        if np.all(np.isfinite(leaf)) and np.max(excess) <= 0:
            continue
        step, *index = np.unravel_index(np.argmax(np.nan_to_num(excess, nan=np.inf)), want.shape)
        return (
            f"leaf {i} {tuple(int(k) for k in index)} after step {RECORDED[step] + 1}: "
            f"gradopt {leaf[(step, *index)]!r}, torch {want[(step, *index)]!r}"
        )
    return None


GRADIENT_CONFIGS = [c for c in META["configs"] if c["problem"] in GRADIENT_PROBLEMS]


@pytest.mark.parametrize(
    "config",
    GRADIENT_CONFIGS,
    ids=[
        f"{c['class']}-{c['id']}{'-scheduled' if 'lr_decay_rate' in c else ''}"
        for c in GRADIENT_CONFIGS
    ],
)
def test_reproduces_recorded_trajectory(config, gradient_runs):
    got, _ = gradient_runs[config["id"]]
    assert all(leaf.dtype == np.float32 for leaf in got)
    problem = _mismatch(config["id"], got)
    assert problem is None, f"{config['class']}({config['kwargs']}): {problem}"


def test_asgd_average_is_torchs_ax(gradient_runs):
    for config in _configs("fixed"):
        if config["class"] != "ASGD":
            continue
        _, state = gradient_runs[config["id"]]
        ax = torch_compat.asgd_average(state)
        for i, leaf in enumerate(ax):
            want = ARRAYS[f"{config['id']}_ax_{i}"]
            np.testing.assert_allclose(np.asarray(leaf), want, rtol=RTOL, atol=1e-6)


def test_asgd_average_needs_one_asgd_state():
    with pytest.raises(ValueError, match="found 0 ASGD states"):
        torch_compat.asgd_average(torch_compat.adam().init({"w": jnp.zeros(2)}))


# ----------------------------------------------------------------------------
# near misses: a variant that differs by one convention must fail the comparison


def _first(cls, **kwargs):
    for c in META["configs"]:
        if c["class"] == cls and "lr_decay_rate" not in c and _kwargs(c) == kwargs:
            return c
    raise LookupError(f"no recorded {cls}({kwargs})")


def _trajectory(opt, problem):
    traj, _ = jax.jit(lambda i, g: _run(opt, i, g))(
        _leaves(problem, "init"), _leaves(problem, "grads")
    )
    return [np.asarray(x)[RECORDED] for x in traj]


def _newton_schulz_in_float32(g, coefficients, steps, eps):
    """The same iteration as torch's, in float32 throughout (no bfloat16 rounding)."""
    a, b, c = coefficients
    x = jnp.asarray(g, jnp.float32)
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / jnp.maximum(jnp.linalg.norm(x), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def test_comparison_rejects_other_conventions(monkeypatch):
    """Variants one convention away fail the comparison: the tolerance sees conventions."""
    # Adam: RAdam without the rectification; SparseAdam with the moments of absent
    # entries decayed (dense Adam).
    assert _mismatch(_first("RAdam")["id"], _trajectory(torch_compat.adam(), "fixed"))
    assert _mismatch(_first("SparseAdam")["id"], _trajectory(torch_compat.adam(), "sparse"))
    # Muon with its Newton-Schulz iteration in float32 instead of torch's bfloat16.
    monkeypatch.setattr(_torch_muon, "_torch_newton_schulz", _newton_schulz_in_float32)
    assert _mismatch(_first("Muon")["id"], _trajectory(torch_compat.muon(), "matrices"))


# ----------------------------------------------------------------------------
# signatures and validation


def _signature(fn):
    return [
        {
            "name": p.name,
            "keyword_only": p.kind is inspect.Parameter.KEYWORD_ONLY,
            "default": repr(p.default),
        }
        for p in inspect.signature(fn).parameters.values()
    ]


ALL_FUNCTIONS = {**FUNCTIONS, "LBFGS": torch_compat.lbfgs}


@pytest.mark.parametrize("cls", sorted(ALL_FUNCTIONS))
def test_arguments_and_defaults_match_torch(cls):
    assert _signature(ALL_FUNCTIONS[cls]) == META["signatures"][cls]


def test_every_recorded_class_is_mirrored():
    assert set(META["signatures"]) == set(ALL_FUNCTIONS)
    assert META["versions"]["torch"].startswith("2.13.0")


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: torch_compat.asgd(lr=-0.1), "lr"),
        (lambda: torch_compat.asgd(weight_decay=-1.0), "weight_decay"),
        (lambda: torch_compat.asgd(lambd=-1.0), "lambd"),
        (lambda: torch_compat.rprop(lr=-0.1), "lr"),
        (lambda: torch_compat.rprop(etas=(1.5, 1.2)), r"etas\[0\]"),
        (lambda: torch_compat.rprop(etas=(0.5, 0.9)), r"etas\[1\]"),
        (lambda: torch_compat.rprop(step_sizes=(1.0, 0.1)), "step_sizes"),
        (lambda: torch_compat.radam(lr=-1.0), "lr"),
        (lambda: torch_compat.radam(betas=(1.0, 0.999)), r"betas\[0\]"),
        (lambda: torch_compat.radam(betas=(0.9, 1.0)), r"betas\[1\]"),
        (lambda: torch_compat.radam(weight_decay=-0.1), "weight_decay"),
        (lambda: torch_compat.adafactor(beta2_decay=0.5), "beta2_decay"),
        (lambda: torch_compat.adafactor(eps=(-1.0, 1e-3)), r"eps\[0\]"),
        (lambda: torch_compat.adafactor(eps=(None, -1.0)), r"eps\[1\]"),
        (lambda: torch_compat.adafactor(d=0.5), "d"),
        (lambda: torch_compat.adafactor(weight_decay=-0.1), "weight_decay"),
        (lambda: torch_compat.sparse_adam(lr=0.0), "lr"),
        (lambda: torch_compat.sparse_adam(eps=0.0), "eps"),
        (lambda: torch_compat.sparse_adam(betas=(0.9, 1.0)), r"betas\[1\]"),
        (lambda: torch_compat.muon(lr=-1.0), "lr"),
        (lambda: torch_compat.muon(momentum=-0.1), "momentum"),
        (lambda: torch_compat.muon(weight_decay=-0.1), "weight_decay"),
        (lambda: torch_compat.muon(adjust_lr_fn="rms"), "adjust_lr_fn"),
        (lambda: torch_compat.muon(ns_steps=100), "ns_steps"),
        (lambda: torch_compat.muon(ns_coefficients=(1.0, 2.0)), "ns_coefficients"),
    ],
)
def test_invalid_arguments_are_rejected(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_muon_refuses_parameters_that_are_not_matrices():
    opt = torch_compat.muon()
    with pytest.raises(ValueError, match=r"2-D parameters.*\['b'\].*\(3,\)"):
        opt.init({"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)})
    opt.init({"w": jnp.zeros((2, 3))})


def test_radam_switches_at_the_step_torch_switches():
    """For b2 = 0.999, rho_5 = 4.996 and rho_6 = 5.994: step 6 is the first rectified one."""
    params = {"w": jnp.ones(3)}
    opt = torch_compat.radam(lr=1.0, betas=(0.0, 0.999))
    state = opt.init(params)
    g = {"w": jnp.asarray([1.0, 2.0, 4.0])}
    steps = []
    for _ in range(6):
        u, state = opt.update(g, state, params)
        steps.append(np.asarray(u["w"]))
    for t in range(5):  # b1 = 0: the unrectified step is -lr * g
        np.testing.assert_allclose(steps[t], -np.asarray(g["w"]), rtol=1e-6)
    rho_inf = 2 / 0.001 - 1
    rho = rho_inf - 2 * 6 * 0.999**6 / (1 - 0.999**6)
    rect = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    v = np.asarray(g["w"]) ** 2 * (1 - 0.999**6)  # constant g: v_t = (1 - b2**t) g**2
    want = -np.asarray(g["w"]) * rect * math.sqrt(1 - 0.999**6) / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(steps[5], want, rtol=1e-5)


# ----------------------------------------------------------------------------
# LBFGS: one update is one step(closure), replayed on the recorded losses

LBFGS_META = META["lbfgs"]


def _logistic(params):
    w, b = params
    x, y = jnp.asarray(ARRAYS["logistic_X"]), jnp.asarray(ARRAYS["logistic_y"])
    z = x @ w + b
    return jnp.mean(jnp.log1p(jnp.exp(z)) - y * z) + 0.005 * jnp.sum(w * w)


def _rosenbrock(params):
    (p,) = params
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


LOSSES = {
    "logistic": (_logistic, (jnp.zeros(4), jnp.zeros(()))),
    "rosenbrock": (_rosenbrock, (jnp.asarray([-1.2, 1.0]),)),
}


def _lbfgs_run(opt, loss, init, steps):
    """Parameters and (n_iter, func_evals) after each update, one compiled scan."""

    def step(carry, _):
        params, state = carry
        updates, state = opt.update(jax.grad(loss)(params), state, params, value_fn=loss)
        params = gradopt.apply_updates(params, updates)
        return (params, state), (params, jnp.stack([state.n_iter, state.func_evals]))

    _, (trajectory, counts) = jax.lax.scan(step, (init, opt.init(init)), None, length=steps)
    return trajectory, counts


@pytest.fixture(scope="module")
def lbfgs_runs():
    configs = LBFGS_META["configs"]
    opts = [torch_compat.lbfgs(**_kwargs(c)) for c in configs]

    @jax.jit
    def run_all():
        return [
            _lbfgs_run(opt, *LOSSES[c["problem"]], LBFGS_META["steps"])
            for opt, c in zip(opts, configs, strict=True)
        ]

    return {c["id"]: out for c, out in zip(configs, run_all(), strict=True)}


@pytest.mark.parametrize(
    "config",
    LBFGS_META["configs"],
    ids=[f"{c['problem']}-{c['id']}" for c in LBFGS_META["configs"]],
)
def test_lbfgs_reproduces_recorded_steps(config, lbfgs_runs):
    """Parameters after every update, and torch's iteration count (its discrete path).

    Torch's evaluation count is compared without a line search; with one, the
    evaluations made at an already converged point compare losses equal to
    float32 rounding, so their number is not a property of the algorithm. On
    Rosenbrock's valley with the line search, rounding differences (torch keeps
    the loss and some line-search scalars in double) grow about tenfold per
    iteration (1e-7 after 5 iterations, 1e-3 after 20, on the same path): the
    intermediate updates are compared to 1e-2, the converged point to ``RTOL``.
    """
    trajectory, counts = lbfgs_runs[config["id"]]
    line_search = config["kwargs"].get("line_search_fn") is not None
    loose = line_search and config["problem"] == "rosenbrock"
    for i, leaf in enumerate(trajectory):
        want, got = ARRAYS[f"{config['id']}_{i}"], np.asarray(leaf)
        np.testing.assert_allclose(got[-1], want[-1], rtol=RTOL, atol=1e-6)
        np.testing.assert_allclose(got, want, rtol=1e-2 if loose else RTOL, atol=1e-6)
    want_counts = ARRAYS[f"{config['id']}_counts"]
    np.testing.assert_array_equal(np.asarray(counts)[:, 0], want_counts[:, 0])
    if not line_search or loose:
        np.testing.assert_array_equal(np.asarray(counts)[:, 1], want_counts[:, 1])


def test_lbfgs_jits_and_needs_value_fn():
    opt = torch_compat.lbfgs()
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="value_fn"):
        opt.update({"w": jnp.ones(3)}, opt.init(params), params)


@pytest.mark.parametrize("shape", [(0, 2), (2, 0)])
def test_adafactor_zero_size_matrix_keeps_finite_factors(shape):
    # torch's row/column means divide by a zero length (0 / 0); gradopt's are 0.
    params = {"e": jnp.zeros(shape, jnp.bfloat16), "w": jnp.float32(-6.7)}
    opt = torch_compat.adafactor(lr=0.01)
    updates, state = opt.update(params, opt.init(params), params)
    for x in jax.tree.leaves((updates, state)):
        assert np.isfinite(np.asarray(x, np.float64)).all()
    assert updates["e"].shape == shape
