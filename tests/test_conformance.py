"""The conformance battery: every entry of ``tests/registry.py`` against the protocol.

The protocol checks are the public kit's: :func:`gradopt.testing.check_transform`
runs on every entry (state stable over steps and independent of the parameters'
values, no recompilation on the second step, jit and no-jit agree, updates
shaped like the gradient, finite bfloat16 updates, ``jax.vmap`` over a batch of
states, the same result inside ``gradopt.chain`` and ``optax.chain``). Here,
besides: bfloat16 updates agree with a float32 run; building the transform
inside ``jax.vmap`` over its sweepable hyperparameters matches a Python loop
over the same concrete values; equal configurations are equal; entries that
need ``params`` say so when called without them; entries with ``converges``
settings solve a quadratic and the Rosenbrock function. The public API is
checked to have an entry for every transform.

Trees are tiny and steps few.
"""

from __future__ import annotations

import functools
import importlib
import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt.testing import check_refuses_complex, check_transform
from tests.registry import FULL_REGISTRY, NOT_TRANSFORMS, REGISTRY, as_matrices

ENTRIES = [pytest.param(e, id=e.name) for e in REGISTRY]
N_STEPS = 3


# ----------------------------------------------------------------------------
# tiny trees


def make_params(dtype=jnp.float32):
    """A small nested tree: a matrix, and a tuple holding a scalar (two leaves keep
    compilations short)."""
    return {
        "w": jnp.asarray([[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]], dtype),
        "s": (jnp.asarray(1.25, dtype),),
    }


def make_grads(dtype=jnp.float32, n=N_STEPS, seed=0):
    """``n`` gradient trees shaped like :func:`make_params`, fixed seed.

    Values are rounded to bfloat16 so that float32 and bfloat16 runs see the
    same gradients.
    """
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(make_params())
    out = []
    for _ in range(n):
        new = [rng.normal(size=jnp.shape(x)).astype(np.float32) for x in leaves]
        new = [jnp.asarray(x, jnp.bfloat16).astype(dtype) for x in new]
        out.append(jax.tree.unflatten(treedef, new))
    return out


def signature(tree):
    """Tree structure plus (shape, dtype) of every leaf."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, [(jnp.shape(x), jnp.result_type(x)) for x in leaves]


def run_steps(entry, tx, grads, params, step=None):
    """Apply ``tx`` to the gradients one after another; return all updates and the state."""
    step = step or functools.partial(entry.update, tx)
    state = tx.init(params)
    outs = []
    for g in grads:
        u, state = step(g, state, params)
        outs.append(u)
    return outs, state


# ----------------------------------------------------------------------------
# coverage of the public API


def _public_factories():
    modules = {"": gradopt}
    for sub in ("compat.torch", "compat.keras"):
        try:
            modules[sub + "."] = importlib.import_module(f"gradopt.{sub}")
        except ModuleNotFoundError:
            continue
    for prefix, module in modules.items():
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if callable(obj) and not isinstance(obj, type) and name not in NOT_TRANSFORMS:
                yield prefix + name, obj


def test_registry_covers_every_public_transform():
    covered = {e.name.split("-")[0] for e in FULL_REGISTRY}
    missing = sorted(name for name, _ in _public_factories() if name not in covered)
    assert not missing, (
        f"public transforms without a registry entry: {missing}; add one entry each to "
        "tests/registry.py (or list helpers that are not transforms in NOT_TRANSFORMS)"
    )


def test_registry_factories_are_the_public_ones():
    public = dict(_public_factories())
    for e in FULL_REGISTRY:
        base = e.name.split("-")[0]
        if base in public and e.factory.__module__.startswith("gradopt"):
            assert e.factory is public[base], e.name


@pytest.mark.parametrize("entry", ENTRIES)
def test_equal_configurations_are_equal_and_hash_alike(entry):
    """Built twice with the same arguments, a transform is the same static jit argument."""
    a, b = entry.make(), entry.make()
    assert a == b
    assert hash(a) == hash(b)
    for name, values in entry.sweepable.items():
        if name in entry.kwargs:
            current = entry.kwargs[name]
        else:
            current = inspect.signature(entry.factory).parameters[name].default
        other = entry.make(**{name: next(v for v in values if v != current)})
        assert other != a, name


# ----------------------------------------------------------------------------
# the public kit, then what it does not cover


@pytest.mark.parametrize("entry", ENTRIES)
def test_check_transform(entry):
    """gradopt.testing.check_transform passes; bfloat16 updates are close to float32 ones.

    Entries that support complex parameters also pass the kit's complex checks
    (``complex_params=True``); real-only entries refuse complex parameters.
    """
    params = as_matrices(entry, make_params())
    result = check_transform(
        entry.make(),
        params,
        pass_params=entry.needs_params,
        extra_args=entry.extra_args,
        steps=N_STEPS,
        bfloat16=entry.low_precision,
        complex_params=entry.supports_complex is True,
        complex_laws=not entry.stochastic,
    )
    if entry.supports_complex is False:
        check_refuses_complex(entry.make(), params, name=entry.name.split("-")[0])
    # the kit's default gradients are the ones make_grads builds (values exact in bfloat16)
    chex.assert_trees_all_equal(result.grads, as_matrices(entry, make_grads()))
    if entry.low_precision:
        chex.assert_trees_all_close(
            jax.tree.map(lambda x: x.astype(jnp.float32), result.bfloat16_updates),
            result.updates,
            rtol=3e-2,
            atol=1e-2,
        )
        bf16_params = as_matrices(entry, make_params(jnp.bfloat16))
        new = gradopt.apply_updates(bf16_params, result.bfloat16_updates[-1])
        assert signature(new) == signature(bf16_params)
        chex.assert_tree_all_finite(new)


@pytest.mark.parametrize("entry", [p for p in ENTRIES if p.values[0].needs_params])
def test_entries_that_need_params_say_so_when_called_without(entry):
    tx = entry.make()
    params = as_matrices(entry, make_params())
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(as_matrices(entry, make_grads()[0]), tx.init(params), None, **entry.extra_args)


# ----------------------------------------------------------------------------
# vmap over hyperparameters


@pytest.mark.parametrize("entry", [p for p in ENTRIES if p.values[0].sweepable])
def test_vmap_over_hyperparameters_matches_python_loop(entry):
    """All sweepable hyperparameters at once: the i-th run uses the i-th value of each."""
    sweeps = entry.sweepable
    n = min(len(v) for v in sweeps.values())
    params, grads = as_matrices(entry, (make_params(), make_grads()))

    def run(hypers):
        return run_steps(entry, entry.make(**hypers), grads, params)

    batched = jax.vmap(run)({k: jnp.asarray(v[:n], jnp.float32) for k, v in sweeps.items()})
    results = []
    for i in range(n):
        expected = run({k: v[i] for k, v in sweeps.items()})  # concrete Python numbers
        got = jax.tree.map(lambda x, i=i: x[i], batched)
        chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-6)
        results.append(jax.tree.leaves(expected[0]))
    # the sweep is not degenerate: different values give different updates
    assert any(
        not np.allclose(a, b) for r in results[1:] for a, b in zip(results[0], r, strict=True)
    ), f"{entry.name}: the swept values {dict(sweeps)} do not change the updates"


# ----------------------------------------------------------------------------
# convergence


def quadratic(params):
    """``0.5 * sum(a * x**2)`` with curvatures from 1 to 8; minimum 0 at 0."""
    x = jnp.concatenate([jnp.ravel(v) for v in jax.tree.leaves(params)])
    a = jnp.linspace(1.0, 8.0, x.shape[0], dtype=x.dtype)
    return 0.5 * jnp.sum(a * x * x)


QUADRATIC_START = {"u": jnp.asarray([1.0, -2.0, 0.5]), "v": jnp.asarray([[1.5, -0.5]])}


def rosenbrock(params):
    """``(1 - x)**2 + 100 (y - x**2)**2``; minimum 0 at (1, 1)."""
    x, y = params["x"], params["y"]
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


ROSENBROCK_START = {"x": jnp.asarray(-1.2), "y": jnp.asarray(1.0)}

PROBLEMS = {
    # name: (loss, start, tolerance on the final loss)
    "quadratic": (quadratic, QUADRATIC_START, 1e-4),
    "rosenbrock": (rosenbrock, ROSENBROCK_START, 1e-3),
}

CONVERGENCE = [
    pytest.param(e, problem, id=f"{e.name}-{problem}")
    for e in REGISTRY
    for problem in sorted(e.converges)
]


@pytest.mark.parametrize(("entry", "problem"), CONVERGENCE)
def test_converges(entry, problem):
    loss_fn, start, tolerance = PROBLEMS[problem]
    settings = entry.converges[problem]
    tx = entry.make(**settings.kwargs)
    if settings.then_learning_rate is not None:
        tx = gradopt.chain(tx, gradopt.scale_by_learning_rate(settings.then_learning_rate))

    @jax.jit
    def solve(params):
        def body(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params)
            extra = dict(entry.extra_args)
            if "value" in extra:
                extra["value"] = loss
            updates, state = tx.update(
                grads, state, params if entry.needs_params else None, **extra
            )
            return (gradopt.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(
            body, (params, tx.init(params)), None, length=settings.steps
        )
        return params, losses

    final, losses = solve(start)
    final_loss = float(loss_fn(final))
    if entry.stochastic:
        final_loss = float(jnp.mean(losses[-max(1, settings.steps // 10) :]))
    assert np.isfinite(final_loss)
    assert final_loss < tolerance, f"{entry.name} on {problem}: final loss {final_loss:.3g}"
