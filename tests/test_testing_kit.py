"""gradopt.testing: check_transform accepts good transforms (gradopt's, optax's and
hand-written ones) and rejects broken ones with a message that names the problem;
the strategies generate the trees they promise; the kit's dependencies stay optional.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
import pytest
from hypothesis import given, settings

import gradopt
from gradopt.testing import CheckResult, check_transform
from gradopt.testing import strategies as gst

# strongly typed leaves (jnp.asarray(1.5) alone would be weakly typed)
PARAMS = {
    "w": jnp.asarray([[0.5, -1.0], [2.0, 0.25]], jnp.float32),
    "b": (jnp.asarray(1.5, jnp.float32),),
}


# ----------------------------------------------------------------------------
# hand-written transforms, good and broken


class CountState(NamedTuple):
    count: jax.Array


def sign_descent(learning_rate: float) -> gradopt.GradientTransformation:
    """A correct transform: ``-lr * sign(g)`` with a step counter."""

    def init(params):
        del params
        return CountState(jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, **extra):
        del params, extra
        out = jax.tree.map(lambda g: (-learning_rate * jnp.sign(g)).astype(g.dtype), updates)
        return out, CountState(state.count + 1)

    return gradopt.GradientTransformation(init, update)


class MomentState(NamedTuple):
    mu: dict


def state_dtype_changes() -> gradopt.GradientTransformation:
    """Broken: init builds float32 moments, update stores them as bfloat16."""

    def init(params):
        return MomentState(jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params))

    def update(updates, state, params=None, **extra):
        mu = jax.tree.map(lambda m, g: (0.9 * m + g).astype(jnp.bfloat16), state.mu, updates)
        return updates, MomentState(mu)

    return gradopt.GradientTransformation(init, update)


def state_structure_changes() -> gradopt.GradientTransformation:
    """Broken: the state is empty after init and gains a counter at the first update."""

    def init(params):
        return ()

    def update(updates, state, params=None, **extra):
        return updates, (jnp.zeros([], jnp.int32),)

    return gradopt.GradientTransformation(init, update)


def python_counter() -> gradopt.GradientTransformation:
    """Broken: the step counter is a Python int."""

    def init(params):
        return {"count": 0}

    def update(updates, state, params=None, **extra):
        return updates, {"count": state["count"] + 1}

    return gradopt.GradientTransformation(init, update)


def wrong_shape_updates() -> gradopt.GradientTransformation:
    """Broken: the updates come back flattened."""

    def init(params):
        return ()

    def update(updates, state, params=None, **extra):
        return jax.tree.map(jnp.ravel, updates), state

    return gradopt.GradientTransformation(init, update)


def value_branching_init() -> gradopt.GradientTransformation:
    """Broken: init decides the state's structure from the parameters' values."""

    def init(params):
        if float(jnp.sum(jnp.abs(params["w"]))) > 0:
            return (jnp.zeros([], jnp.int32),)
        return ()

    def update(updates, state, params=None, **extra):
        return updates, state

    return gradopt.GradientTransformation(init, update)


# ----------------------------------------------------------------------------
# accepted


@pytest.mark.parametrize(
    "tx",
    [
        gradopt.adam(1e-2),
        gradopt.chain(gradopt.clip_by_global_norm(1.0), gradopt.sgd(0.1, momentum=0.9)),
        optax.adam(1e-2),
        optax.chain(optax.clip(1.0), optax.sgd(0.1, momentum=0.9)),
        sign_descent(0.01),
    ],
    ids=["gradopt.adam", "gradopt.chain", "optax.adam", "optax.chain", "hand-written"],
)
def test_accepts_good_transforms(tx):
    # optax mixes Python floats with int32 counters, which the strict promotion of
    # tests/conftest.py refuses; users run with JAX's standard promotion
    with jax.numpy_dtype_promotion("standard"):
        result = check_transform(tx, PARAMS)
    assert isinstance(result, CheckResult)
    assert len(result.updates) == len(result.grads) == 3
    assert jax.tree.structure(result.bfloat16_updates[0]) == jax.tree.structure(PARAMS)


def test_accepts_params_with_none_python_scalar_and_empty_leaves():
    params = {"w": jnp.ones((2, 0)), "n": None, "t": 1.5, "s": jnp.asarray(2.0, jnp.bfloat16)}
    check_transform(gradopt.sgd(0.1, momentum=0.9), params)
    check_transform(
        sign_descent(0.1),
        params,
        grads={
            "w": jnp.ones((2, 0)),
            "n": None,
            "t": jnp.asarray(0.5),
            "s": jnp.asarray(1.0, jnp.bfloat16),
        },
    )


def test_options_for_params_and_extra_arguments():
    check_transform(gradopt.adamw(1e-2, weight_decay=0.1), PARAMS, pass_params=True)
    tx = gradopt.reduce_on_plateau(factor=0.5, patience=0)
    check_transform(tx, PARAMS, extra_args={"value": jnp.asarray(1.0)})
    with pytest.raises(AssertionError, match=r"(?s)\[update runs\].*pass_params=True"):
        check_transform(gradopt.adamw(1e-2, weight_decay=0.1), PARAMS)


# ----------------------------------------------------------------------------
# rejected, with the expected message


@pytest.mark.parametrize(
    ("tx", "pattern"),
    [
        (
            state_dtype_changes(),
            r"(?s)\[stable state\]: step 1 .*changed dtype float32 -> bfloat16",
        ),
        (state_structure_changes(), r"(?s)\[stable state\]: step 1 .*tree structure changed"),
        (python_counter(), r"(?s)\[state leaves are arrays\].*\['count'\] = 0 \(int\)"),
        (
            wrong_shape_updates(),
            r"(?s)\[updates like the gradient\].*not shaped like.*\(\) -> \(1,\)",
        ),
        (value_branching_init(), r"(?s)\[init does not depend on values\].*eval_shape"),
    ],
    ids=["state-dtype", "state-structure", "python-counter", "updates-shape", "init-values"],
)
def test_rejects_broken_transforms(tx, pattern):
    with pytest.raises(AssertionError, match=pattern) as info:
        check_transform(tx, PARAMS)
    assert "How to fix:" in str(info.value)


def test_message_says_how_to_fix_a_changing_state():
    with pytest.raises(AssertionError) as info:
        check_transform(state_dtype_changes(), PARAMS)
    assert ".astype(old.dtype)" in str(info.value)
    assert "['w']" in str(info.value) or "['b']" in str(info.value)


def test_rejects_nonfinite_updates_and_weak_type_changes():
    def init(params):
        return CountState(jnp.zeros([], jnp.int32))

    def divide(updates, state, params=None, **extra):
        return jax.tree.map(lambda g: g / 0.0, updates), CountState(state.count + 1)

    with pytest.raises(AssertionError, match=r"(?s)\[finite updates\]"):
        check_transform(gradopt.GradientTransformation(init, divide), PARAMS)

    # a state that is a weakly typed float after init and strongly typed after update:
    # eager the dtypes agree, under jit the trace changes
    def init_weak(params):
        return (jnp.asarray(0.0),)

    def update_strong(updates, state, params=None, **extra):
        return updates, (state[0].astype(jnp.float32) + jnp.ones([], jnp.float32),)

    with pytest.raises(AssertionError, match="weakly typed"):
        check_transform(gradopt.GradientTransformation(init_weak, update_strong), PARAMS)


def test_rejects_a_second_compilation():
    """Contrived to pass every eager check: under jit only, the state's dtype changes."""

    def init(params):
        return (jnp.zeros([], jnp.float32),)

    def update(updates, state, params=None, **extra):
        new = state[0] + 1.0
        if isinstance(new, jax.core.Tracer):
            new = new.astype(jnp.float16)
        return updates, (new,)

    pattern = r"(?s)\[stable under jit\].*changed dtype float32 -> float16"
    with pytest.raises(AssertionError, match=pattern):
        check_transform(gradopt.GradientTransformation(init, update), PARAMS)


def test_rejects_python_side_effects_that_jit_bakes_in():
    calls = [0]

    def init(params):
        return ()

    def update(updates, state, params=None, **extra):
        calls[0] += 1  # a Python counter: eager runs see 1, 2, 3; jit sees its trace's value
        return jax.tree.map(lambda g: calls[0] * g, updates), state

    with pytest.raises(AssertionError, match=r"(?s)\[jit and no-jit agree\].*jnp.where"):
        check_transform(gradopt.GradientTransformation(init, update), PARAMS)


def test_not_a_transform_is_a_type_error():
    with pytest.raises(TypeError, match="not a gradient transformation"):
        check_transform(lambda x: x, PARAMS)
    with pytest.raises(ValueError, match="steps must be an int >= 2"):
        check_transform(gradopt.sgd(0.1), PARAMS, steps=1)


# ----------------------------------------------------------------------------
# strategies


@settings(max_examples=25, derandomize=True, deadline=None, database=None)
@given(tree=gst.trees(), data=gst.st.data())
def test_strategies_draw_trees_with_matching_gradients(tree, data):
    grads = data.draw(gst.gradients(tree))
    assert jax.tree.structure(grads) == jax.tree.structure(tree)
    for p, g in zip(jax.tree.leaves(tree), jax.tree.leaves(grads), strict=True):
        assert jnp.shape(g) == jnp.shape(p)
        if not isinstance(p, float):
            assert g.dtype == p.dtype and p.dtype in (jnp.float16, jnp.bfloat16, jnp.float32)


def test_strategies_cover_the_promised_leaf_kinds():
    seen = set()

    @settings(max_examples=60, derandomize=True, deadline=None, database=None)
    @given(leaf=gst.leaves())
    def collect(leaf):
        if leaf is None:
            seen.add("none")
        elif isinstance(leaf, float):
            seen.add("python")
        else:
            seen.add(str(leaf.dtype))
            seen.add("0-d" if leaf.ndim == 0 else ("empty" if leaf.size == 0 else "array"))

    collect()
    assert seen >= {"none", "python", "0-d", "empty", "array", "float16", "bfloat16", "float32"}


# ----------------------------------------------------------------------------
# optional dependencies


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_gradopt_needs_neither_chex_optax_nor_hypothesis():
    done = _fresh(
        """
        import sys
        for name in ("chex", "optax", "hypothesis"):
            sys.modules[name] = None  # any import of them fails
        import jax, gradopt, gradopt.testing
        try:
            import gradopt.testing.strategies
        except ImportError as e:
            assert "pip install hypothesis" in str(e), e
        else:
            raise SystemExit("strategies imported without hypothesis")
        try:
            gradopt.testing.check_transform(gradopt.sgd(0.1), {"w": jax.numpy.ones(2)})
        except ImportError as e:
            assert "pip install chex optax" in str(e), e
        else:
            raise SystemExit("check_transform ran without chex")
        print("ok")
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# ----------------------------------------------------------------------------
# the docs page "Writing your own transform" runs as written

DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def test_writing_your_own_transform_page_runs(capsys):
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS_PAGE.read_text(), re.DOTALL | re.MULTILINE)
    assert len(blocks) >= 5, f"found {len(blocks)} python blocks in {DOCS_PAGE}"
    namespace: dict = {"__name__": "docs_testing_page"}
    # the page's users run with JAX's standard dtype promotion (optax.chain inside the kit)
    with jax.numpy_dtype_promotion("standard"):
        for i, code in enumerate(blocks):
            exec(compile(code, f"testing.md block {i + 1}", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "loss after 100 steps" in out and "How to fix" in out
