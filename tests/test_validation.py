"""Property tests (Hypothesis) for argument validation and for arbitrary parameter trees.

For every registry entry that declares ``ranges`` (all named optimizers and
most primitives): a concrete value outside the declared range raises a
ValueError whose message names the argument and shows the value; a value of
the wrong type raises a TypeError; values inside the ranges construct. For every
named optimizer: random nested trees (dicts, lists and tuples of small float32
arrays of random shapes, empty ones included) go through ``init`` and
``update`` under ``jax.jit`` with finite results of the same structure,
shapes and dtypes.

Hypothesis runs derandomized (the examples are the same on every run) with few
examples, under the ``gradopt-validation`` profile registered here and applied
per test, so other test files keep their own settings.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.registry import REGISTRY, Range, as_matrices

settings.register_profile(
    "gradopt-validation",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=15,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile("gradopt-validation")

RANGED = [pytest.param(e, id=e.name) for e in REGISTRY if e.ranges]
FLAGGED = [pytest.param(e, id=e.name) for e in REGISTRY if e.flags]
OPTIMIZERS = [pytest.param(e, id=e.name) for e in REGISTRY if e.optimizer]


def inside(r: Range, x: float) -> bool:
    if math.isnan(x):
        return False
    if r.low is not None and (x <= r.low if r.low_open else x < r.low):
        return False
    return not (r.high is not None and (x >= r.high if r.high_open else x > r.high))


def edges(r: Range):
    """The bounds and their neighbouring floats on both sides."""
    out = []
    for bound in (r.low, r.high):
        if bound is not None:
            out += [bound, math.nextafter(bound, -math.inf), math.nextafter(bound, math.inf)]
            out += [bound - 0.25, bound + 0.25]
    return out


def outside_values(r: Range):
    """Floats outside ``r`` (the edges first, then anything), and NaN."""
    parts = [st.just(math.nan)]
    near = [x for x in edges(r) if not inside(r, x)]
    if near:
        parts.append(st.sampled_from(near))
    if r.low is not None:
        parts.append(st.floats(max_value=r.low, allow_nan=False))
    if r.high is not None:
        parts.append(st.floats(min_value=r.high, allow_nan=False))
    return st.one_of(*parts).filter(lambda x: not inside(r, x))


def inside_values(r: Range):
    """Floats inside ``r`` (the edges first), kept moderate: huge eps or learning
    rates are legal but not what this checks."""
    low = -1e3 if r.low is None else r.low
    high = 1e3 if r.high is None else r.high
    near = [x for x in edges(r) if inside(r, x) and low <= x <= high]
    anywhere = st.floats(
        min_value=low, max_value=high, exclude_min=r.low_open, exclude_max=r.high_open
    )
    parts = [st.sampled_from(near), anywhere] if near else [anywhere]
    return st.one_of(*parts).filter(lambda x: inside(r, x))


# ----------------------------------------------------------------------------
# hyperparameters


@pytest.mark.parametrize("entry", RANGED)
def test_out_of_range_hyperparameter_raises_value_error_naming_it(entry):
    strategy = st.fixed_dictionaries({k: outside_values(r) for k, r in entry.ranges.items()})

    @PROFILE
    @given(values=strategy)
    def check(values):
        for name, value in values.items():  # one bad argument at a time
            with pytest.raises(ValueError) as info:
                entry.make(**{name: value})
            message = str(info.value)
            assert name in message, message
            assert repr(value) in message, message

    check()


WRONG_TYPES = ["0.1", [0.1], (0.1,), {"value": 0.1}, 1j, True, object()]


@pytest.mark.parametrize("entry", RANGED)
@pytest.mark.parametrize("value", WRONG_TYPES, ids=lambda v: type(v).__name__)
def test_hyperparameter_of_the_wrong_type_raises_type_error(entry, value):
    for name in sorted(entry.ranges):
        with pytest.raises(TypeError, match=name):
            entry.make(**{name: value})


@pytest.mark.parametrize("entry", RANGED)
def test_array_hyperparameter_must_be_a_scalar(entry):
    for name in sorted(entry.ranges):
        with pytest.raises(ValueError, match=f"{name} must be a scalar"):
            entry.make(**{name: jnp.zeros(3)})


@pytest.mark.parametrize("entry", FLAGGED)
@pytest.mark.parametrize("value", [1, 0, "yes", None, 1.0], ids=repr)
def test_switch_of_the_wrong_type_raises_type_error(entry, value):
    for flag in entry.flags:
        entry.make(**{flag: False})  # the switch exists
        with pytest.raises(TypeError, match=f"{flag} must be True or False"):
            entry.make(**{flag: value})


@pytest.mark.parametrize("entry", RANGED)
def test_in_range_hyperparameters_construct(entry):
    strategy = st.fixed_dictionaries({k: inside_values(r) for k, r in entry.ranges.items()})

    @PROFILE
    @given(values=strategy)
    def check(values):
        tx = entry.make(**values)
        assert callable(tx.init) and callable(tx.update)

    check()


@pytest.mark.parametrize("entry", RANGED)
def test_in_range_numpy_and_jax_scalars_construct(entry):
    for name, r in entry.ranges.items():
        value = next(v for v in (0.5, 0.0, 1.0, 2.0, -1.0) if inside(r, v))
        entry.make(**{name: np.float32(value)})
        entry.make(**{name: jnp.asarray(value)})


def _halving(count):
    """A module-level schedule: ``0.1 / 2**count``."""
    return 0.1 * jnp.power(0.5, count.astype(jnp.float32))


@pytest.mark.parametrize("entry", [p for p in RANGED if p.values[0].callable_ok])
def test_schedule_arguments_accept_a_callable(entry):
    params = as_matrices(entry, {"w": jnp.asarray([1.0, -2.0])})
    grads = as_matrices(entry, {"w": jnp.asarray([0.5, 0.25])})
    for name in entry.callable_ok:
        tx = entry.make(**{name: _halving})
        state = tx.init(params)
        u1, state = entry.update(tx, grads, state, params)
        u2, state = entry.update(tx, grads, state, params)
        chex.assert_tree_all_finite((u1, u2))
        assert not np.allclose(u1["w"], 0.0)


# ----------------------------------------------------------------------------
# random trees


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)
leaves = hnp.arrays(
    np.float32, shapes, elements=st.floats(-10.0, 10.0, width=32, allow_subnormal=False)
)
keys = st.sampled_from(["a", "b", "c", "w"])
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.dictionaries(keys, children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3).map(tuple),
    ),
    max_leaves=5,
)


def signature(tree):
    leaves_, treedef = jax.tree.flatten(tree)
    return treedef, [(x.shape, x.dtype) for x in leaves_]


@pytest.mark.parametrize("entry", OPTIMIZERS)
def test_random_nested_trees_go_through_init_and_update_under_jit(entry):
    tx = entry.make()

    @jax.jit
    def step(params):
        grads = jax.tree.map(lambda p: jnp.sin(3.0 * p) + 0.5, params)
        state = tx.init(params)
        updates, new_state = entry.update(tx, grads, state, params)
        return updates, state, new_state

    @settings(PROFILE, max_examples=3)
    @given(tree=trees)
    def check(tree):
        params = jax.tree.map(jnp.asarray, tree)
        updates, state, new_state = step(params)
        assert signature(updates) == signature(params)
        assert signature(new_state) == signature(state)
        chex.assert_tree_all_finite((updates, new_state))

    check()
