"""Fuzzing (Hypothesis) over every entry of ``tests/registry.py``.

Random valid hyperparameters (from the entries' ``ranges``) and random parameter
trees (:mod:`gradopt.testing.strategies`: nested dicts, lists and tuples,
``None`` leaves, 0-d and zero-size arrays, float16 / bfloat16 / float32, and
complex64 leaves for the entries that support complex parameters):
finite input gives finite output of the gradient's structure, shapes and dtypes;
invalid hyperparameters (out of range, inf, nan, complex) are rejected naming
the argument; ``init`` works under ``jax.eval_shape``; bias corrections and
every counter stay finite after 10^7 steps and at the int32 maximum. Then the
defect classes of issue 11: Python scalar leaves, zeros under
``gradopt.inject_hyperparams`` and ``optax.inject_hyperparams`` (traced and
concrete), schedules as compat learning rates, extreme finite gradients,
wrong-shape and integer gradients, foreign states, schedule boundaries under jit
against eager, large step counts.

Two Hypothesis profiles (``tests/conftest.py``): ``small`` (derandomized, few
examples; ``make test``) and ``fuzz`` (``make fuzz``). The number of examples
per test scales with the profile's ``max_examples``. Every property holds for
every entry: nothing is marked as an expected failure.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import gradopt
from gradopt.testing import strategies as gst
from tests.registry import NONNEGATIVE, REGISTRY, Range

N = settings.default.max_examples  # examples per entry; the profile decides
EXAMPLES = {"n": 0}  # examples run in this process (printed by tests/conftest.py)


def counted():
    EXAMPLES["n"] += 1


def scaled(k: float):
    """Settings with ``k`` times the profile's examples (at least 1)."""
    return settings(max_examples=max(1, round(k * N)))


# The registry-wide properties below are fuzzed by `make fuzz` (the "fuzz" profile,
# every registry entry); `make test` (the "small" profile) runs this file's
# properties that are not per entry, to stay inside its time budget. The
# conformance, validation and robustness suites cover the named optimizers there.
EVERY_ENTRY = settings.default.max_examples > 1


def entries(where=lambda e: True):
    """Registry entries as pytest params (those that refuse non-matrix parameters
    are left to the conformance battery, which feeds them matrices)."""
    return [
        pytest.param(e, id=e.name)
        for e in REGISTRY
        if EVERY_ENTRY and where(e) and not e.matrices_only
    ]


def compat_lr(entry) -> str | None:
    """The learning-rate argument of a compat entry (``lr`` or ``learning_rate``)."""
    if not entry.name.startswith("compat."):
        return None
    return "lr" if entry.name.startswith("compat.torch") else "learning_rate"


def ranges(entry) -> dict[str, Range]:
    """The entry's ranges; compat entries: their learning rate (non-negative unless
    the entry narrows it: torch's SparseAdam rejects lr = 0)."""
    lr = compat_lr(entry)
    return {lr: entry.ranges.get(lr, NONNEGATIVE)} if lr else dict(entry.ranges)


# ----------------------------------------------------------------------------
# drawing hyperparameters, trees and gradients


def inside(r: Range, x: float) -> bool:
    if math.isnan(x):
        return False
    if r.low is not None and (x <= r.low if r.low_open else x < r.low):
        return False
    return not (r.high is not None and (x >= r.high if r.high_open else x > r.high))


def valid_values(r: Range):
    """Valid values, kept where the results stay representable in float16:
    unbounded ranges are cut at 10 (and eps-like open bounds start at 1e-6).
    A value must stay valid once rounded to float32, the dtype of injected
    hyperparameters (``inject_hyperparams`` casts them): ``1 - 2**-53`` is in
    ``[0, 1)`` but rounds to 1.0."""
    low = -10.0 if r.low is None else r.low
    high = 10.0 if r.high is None else min(r.high, 10.0)
    if r.low_open and r.low == 0.0:
        low = 1e-6
    edges = [x for x in (low, high, 0.0, 0.5, 0.9, 0.999, 1.0) if inside(r, x) and low <= x <= high]
    anywhere = st.floats(low, high, exclude_max=r.high_open and high == r.high)
    return st.one_of(st.sampled_from(edges), anywhere).filter(
        lambda x: inside(r, x) and inside(r, float(np.float32(x)))
    )


@st.composite
def hyperparameters(draw, entry):
    """A random subset of the entry's ranged hyperparameters, each a valid value."""
    out = {}
    for name, r in sorted(ranges(entry).items()):
        if draw(st.booleans()):
            out[name] = draw(valid_values(r))
    return out


FLOAT_LEAVES = gst.leaves(none=True, python_scalars=False)
TREES = gst.trees(FLOAT_LEAVES, max_leaves=4).filter(lambda t: t is not None)


def signature(tree):
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, [(jnp.shape(x), jnp.result_type(x)) for x in leaves]


def _finite(x) -> bool:
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return bool(np.all(np.isfinite(x)))
    return bool(np.all(np.isfinite(x.astype(np.float64))))


def all_finite(tree) -> bool:
    return all(
        _finite(x) for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    )


def run(entry, tx, params, grads_list, state=None):
    """Eager updates; returns the list of updates and the last state.

    ``params`` are always passed: a drawn weight decay needs them (the
    conformance battery checks ``params=None`` where an entry allows it).
    """
    state = tx.init(params) if state is None else state
    outs = []
    for g in grads_list:
        u, state = tx.update(g, state, params, **entry.extra_args)
        outs.append(u)
    return outs, state


def check_run(entry, tx, params, grads_list):
    """Updates finite, shaped like the gradients; state stable; params keep dtypes."""
    state0 = tx.init(params)
    outs, state = run(entry, tx, params, grads_list, state0)
    for g, u in zip(grads_list, outs, strict=True):
        assert signature(u) == signature(g), (signature(u), signature(g))
    assert signature(state) == signature(state0)
    assert all_finite((outs, state)), outs
    new = gradopt.apply_updates(params, outs[-1])
    assert signature(new) == signature(params)
    return outs, state


# ----------------------------------------------------------------------------
# finite in, finite out; shapes and dtypes kept


@pytest.mark.parametrize("entry", entries())
@settings(max_examples=N)
@given(data=st.data())
def test_finite_input_gives_finite_output_of_the_same_shapes(entry, data):
    counted()
    tx = entry.make(**data.draw(hyperparameters(entry), label="hyperparameters"))
    params = data.draw(TREES, label="params")
    grads = [data.draw(gst.gradients(params), label="grads") for _ in range(2)]
    check_run(entry, tx, params, grads)


MIXED_LEAVES = gst.leaves(
    st.one_of(gst.complex_dtypes(), gst.float_dtypes()), none=True, python_scalars=False
)


@pytest.mark.parametrize("entry", entries(lambda e: e.supports_complex is True))
@settings(max_examples=N)
@given(data=st.data())
def test_complex_trees_give_finite_output_of_the_same_shapes(entry, data):
    """Entries that support complex parameters: a complex64 leaf next to a random
    tree of complex and real leaves, random valid hyperparameters."""
    counted()
    tx = entry.make(**data.draw(hyperparameters(entry), label="hyperparameters"))
    z = data.draw(gst.arrays(jnp.complex64, allow_empty=False), label="complex leaf")
    rest = data.draw(gst.trees(MIXED_LEAVES, max_leaves=2), label="rest")
    params = {"z": z, "rest": rest}
    grads = [data.draw(gst.gradients(params), label="grads") for _ in range(2)]
    outs, state = check_run(entry, tx, params, grads)
    assert jnp.result_type(outs[-1]["z"]) == jnp.complex64


@pytest.mark.parametrize("entry", entries())
@settings(max_examples=N)
@given(params=TREES)
def test_init_depends_only_on_shapes_and_dtypes(entry, params):
    counted()
    tx = entry.make()
    state = tx.init(params)
    abstract = jax.eval_shape(tx.init, params)
    assert signature(abstract) == signature(state)
    other = jax.tree.map(lambda p: p * 2 + 1, params)
    assert signature(tx.init(other)) == signature(state)


# ----------------------------------------------------------------------------
# invalid hyperparameters: out of range, nan, inf, complex


def outside_values(r: Range):
    parts = [st.just(math.nan)]
    if r.low is not None:
        parts.append(st.floats(max_value=r.low, allow_nan=False, allow_infinity=False))
    if r.high is not None:
        parts.append(st.floats(min_value=r.high, allow_nan=False, allow_infinity=False))
    return st.one_of(*parts).filter(lambda x: not inside(r, x))


def rejects(entry, name, value, errors=(ValueError, TypeError)):
    with pytest.raises(errors) as info:
        entry.make(**{name: value})
    assert name in str(info.value), str(info.value)


@pytest.mark.parametrize("entry", entries(lambda e: e.ranges))
@settings(max_examples=N)
@given(data=st.data())
def test_out_of_range_or_nan_hyperparameters_are_rejected_naming_them(entry, data):
    counted()
    name = data.draw(st.sampled_from(sorted(entry.ranges)), label="name")
    value = data.draw(outside_values(entry.ranges[name]), label="value")
    rejects(entry, name, value)


def _infinite_is_valid(r: Range, x: float) -> bool:
    return inside(r, x)


INF_CASES = [
    (e, name, sign)
    for e in REGISTRY
    for name, r in sorted(ranges(e).items())
    for sign in (1.0, -1.0)
]


def _inf_params():
    return [
        pytest.param(e, name, sign * math.inf, id=f"{e.name}-{name}-{sign * math.inf}")
        for e, name, sign in INF_CASES
    ]


@pytest.mark.parametrize(("entry", "name", "value"), _inf_params())
def test_infinite_hyperparameters_are_rejected_naming_them(entry, name, value):
    rejects(entry, name, value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1j, id="1j"),
        pytest.param(np.complex64(0.5), id="complex64"),
        pytest.param(np.complex128(0.5 + 0.5j), id="complex128"),
    ],
)
@pytest.mark.parametrize("entry", entries(lambda e: ranges(e)))
def test_complex_hyperparameters_are_rejected_naming_them(entry, value):
    for name in sorted(ranges(entry)):
        rejects(entry, name, value)


# ----------------------------------------------------------------------------
# counters: 10^7 steps and the int32 maximum


def with_counters(state, value: int):
    """The state with every int32 scalar (step counters) set to ``value``."""

    def set_count(x):
        if jnp.shape(x) == () and jnp.result_type(x) == jnp.int32:
            return jnp.asarray(value, jnp.int32)
        return x

    return jax.tree.map(set_count, state)


LARGE = {"1e7": 10**7, "int32_max": 2**31 - 1}


@pytest.mark.parametrize("entry", entries())
@settings(max_examples=N)
@given(data=st.data())
def test_bias_corrections_and_counters_finite_after_ten_million_steps(entry, data):
    """float32 and bfloat16 leaves in one tree; every int32 counter set to 10^7."""
    counted()
    leaf = gst.leaves(
        st.sampled_from([jnp.float32, jnp.bfloat16]), none=False, python_scalars=False
    )
    params = data.draw(gst.trees(leaf, max_leaves=3), label="params")
    grads = [data.draw(gst.gradients(params)) for _ in range(2)]
    tx = entry.make()
    state = with_counters(tx.init(params), LARGE["1e7"])
    outs, state = run(entry, tx, params, grads, state)
    assert all_finite((outs, state))
    for g, u in zip(grads, outs, strict=True):
        assert signature(u) == signature(g)


def _fixed_params():
    """A float32 matrix and a bfloat16 scalar."""
    return {
        "w": jnp.asarray([[0.5, -1.0], [2.0, 0.25]], jnp.float32),
        "b": (jnp.asarray(1.5, jnp.bfloat16),),
    }


def _fixed_grads(scale=1.0):
    return {
        "w": jnp.asarray([[0.25, -0.5], [1.0, 0.125]], jnp.float32) * scale,
        "b": (jnp.asarray(-0.75 * scale, jnp.bfloat16),),
    }


def _other_grads():
    """Not a multiple of ``_fixed_grads()``: no entry of it vanishes in the eigenbases of
    that gradient's ``G G^T`` and ``G^T G`` (where SOAP's step with b2 = 0 is rounding
    noise / eps)."""
    return {
        "w": jnp.asarray([[-0.375, 0.25], [-0.5, -0.875]], jnp.float32),
        "b": (jnp.asarray(0.375, jnp.bfloat16),),
    }


@pytest.mark.parametrize("entry", entries())
def test_counters_saturate_at_the_int32_maximum(entry):
    tx = entry.make()
    params = _fixed_params()
    state = with_counters(tx.init(params), LARGE["int32_max"])
    outs, state = run(entry, tx, params, [_fixed_grads(), _fixed_grads()], state)
    assert all_finite((outs, state)), outs


# ----------------------------------------------------------------------------
# issue 11 item 1: Python scalar leaves


@pytest.mark.parametrize("entry", entries())
@settings(max_examples=N)
@given(data=st.data())
def test_python_scalar_leaves(entry, data):
    counted()
    params = data.draw(gst.trees(max_leaves=4), label="params")
    params = {"python": 1.5, "rest": params}  # at least one Python float leaf
    grads = [data.draw(gst.gradients(params)) for _ in range(2)]
    check_run(entry, entry.make(), params, grads)


# ----------------------------------------------------------------------------
# issue 11 item 2 and issue 8 problem 3: zeros under inject_hyperparams


def _injectable(e):
    """Named optimizers built by gradopt's own factories (not compat, not wrappers),
    called without extra arguments (``value=``) by these tests."""
    return e.optimizer and not e.extra_args


def _zeros(entry, zero):
    """Every hyperparameter of the entry that may be zero, set to ``zero``
    (a momentum, a weight decay or a dampening of zero changes which stages exist)."""
    return {n: zero for n, r in sorted(entry.ranges.items()) if inside(r, 0.0)}


def _inject_run(tx, step, extra=None):
    params = _fixed_params()
    state = tx.init(params)
    outs = []
    for _ in range(2):
        u, state = step(_fixed_grads(), state, params, **(extra or {}))
        outs.append(u)
    assert all_finite((outs, state))
    return outs


@pytest.mark.parametrize("zero", [0.0, 5e-222], ids=["0.0", "5e-222"])
@pytest.mark.parametrize("entry", entries(_injectable))
def test_gradopt_inject_hyperparams_with_concrete_zeros_eager(entry, zero):
    inject = gradopt.inject_hyperparams(entry.factory, static_args=entry.static_args)
    tx = inject(**{**entry.kwargs, **_zeros(entry, zero)})
    _inject_run(tx, tx.update, entry.extra_args)


@pytest.mark.parametrize("entry", entries(_injectable))
def test_gradopt_inject_hyperparams_with_traced_zeros(entry):
    """Built with non-zero values, then set to traced zeros inside a jitted step
    (built with concrete zeros, a jitted step traces them too)."""
    zeros = _zeros(entry, 0.0)
    inject = gradopt.inject_hyperparams(entry.factory, static_args=entry.static_args)
    tx = inject(**{**entry.kwargs, **{n: 0.5 for n in zeros}})
    params = _fixed_params()

    @jax.jit
    def step(value):
        state = gradopt.set_hyperparams(tx.init(params), **{n: value for n in zeros})
        return tx.update(_fixed_grads(), state, params, **entry.extra_args)

    assert all_finite(step(jnp.zeros([], jnp.float32)))


# optax's wrapper drops the extra update arguments of transforms that are not optax's own,
# so the entries that read the objective (value_fn=) cannot run inside it
@pytest.mark.parametrize("entry", entries(lambda e: _injectable(e) and not e.needs_objective))
def test_optax_inject_hyperparams_with_zeros_under_jit(entry):
    """issue 8 problem 3: optax traces the values in update but not in init."""
    kwargs = {**entry.kwargs, **_zeros(entry, 0.0)}
    kwargs["learning_rate"] = 0.1
    with jax.numpy_dtype_promotion("standard"):  # optax's hyperparameters are float32 arrays
        tx = optax.inject_hyperparams(entry.factory, static_args=entry.static_args)(**kwargs)
        _inject_run(tx, jax.jit(tx.update))


@pytest.mark.parametrize("entry", entries(_injectable))
@settings(max_examples=N)
@given(data=st.data())
def test_inject_hyperparams_random_values_match_the_plain_optimizer(entry, data):
    counted()
    values = data.draw(hyperparameters(entry), label="hyperparameters")
    kwargs = {**entry.kwargs, **values}
    plain = entry.make(**values)
    injected = gradopt.inject_hyperparams(entry.factory, static_args=entry.static_args)(**kwargs)
    params = _fixed_params()
    # a second gradient in another direction: after a multiple of the first, the step of
    # an eigenbasis method with b2 = 0 divides rounding noise by eps (soap)
    grads = [_fixed_grads(), _other_grads()]
    want, _ = run(entry, plain, params, grads)
    got, _ = run(entry, injected, params, grads)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------
# issue 11 item 3: schedules as the learning rate of every compat entry


def _halving(count):
    """A module-level schedule: ``0.1 / 2**count``."""
    return 0.1 * jnp.power(0.5, count.astype(jnp.float32))


@pytest.mark.parametrize("entry", entries(lambda e: compat_lr(e) and e.schedule_lr))
def test_compat_entries_take_a_schedule_as_learning_rate(entry):
    tx = entry.make(**{compat_lr(entry): _halving})
    outs, _ = run(entry, tx, _fixed_params(), [_fixed_grads(), _fixed_grads()])
    assert all_finite(outs)
    assert not np.allclose(np.asarray(outs[0]["w"]), 0.0)


def test_compat_torch_adagrad_schedule_with_lr_decay():
    tx = gradopt.compat.torch.adagrad(lr=_halving, lr_decay=0.1)
    params = _fixed_params()
    outs, _ = run(BY_NAME_["compat.torch.adagrad"], tx, params, [_fixed_grads()] * 2)
    assert all_finite(outs)


BY_NAME_ = {e.name: e for e in REGISTRY}


# ----------------------------------------------------------------------------
# issue 11 item 4: extreme finite gradients


@pytest.mark.parametrize("entry", entries())
def test_extreme_finite_gradients_give_finite_updates(entry):
    """A 1e30 gradient (finite in float32 and bfloat16), then ordinary ones."""
    tx = entry.make()
    grads = [_fixed_grads(scale=1e30), _fixed_grads(), _fixed_grads(scale=-1.0)]
    outs, state = run(entry, tx, _fixed_params(), grads)
    assert all_finite(outs), outs


# ----------------------------------------------------------------------------
# issue 11 items 6 and 7: wrong-shape and integer gradients


SHAPE_CASES = {"scalar-vs-(1,)": ((), (1,)), "(2,)-vs-(3,)": ((2,), (3,))}


ANY_SHAPE = [e for e in REGISTRY if not e.matrices_only]


def _shape_params():
    out = []
    for e in ANY_SHAPE:
        for case in sorted(SHAPE_CASES):
            out.append(pytest.param(e, case, id=f"{e.name}-{case}"))
    return out


@pytest.mark.parametrize(("entry", "case"), _shape_params())
def test_wrong_shape_gradient_is_a_value_error(entry, case):
    """Refused by ``update`` or, for transforms that never see the params, by
    ``apply_updates``; never broadcast into params of another shape."""
    p_shape, g_shape = SHAPE_CASES[case]
    params = {"w": jnp.ones(p_shape, jnp.float32)}
    tx = entry.make()
    state = tx.init(params)
    with pytest.raises(ValueError, match="shape"):
        updates, _ = entry.update(tx, {"w": jnp.ones(g_shape, jnp.float32)}, state, params)
        gradopt.apply_updates(params, updates)


def _int_params():
    out = []
    for e in ANY_SHAPE:
        for name, dtype in (("int32", jnp.int32), ("uint8", jnp.uint8), ("bool", jnp.bool_)):
            out.append(pytest.param(e, dtype, id=f"{e.name}-{name}"))
    return out


@pytest.mark.parametrize(("entry", "dtype"), _int_params())
def test_integer_gradient_is_refused_or_computed_in_float(entry, dtype):
    params = {"w": jnp.asarray([0.5, -1.0, 2.0], jnp.float32)}
    ints = {"w": jnp.asarray([1, 0, 3], dtype)}
    floats = {"w": ints["w"].astype(jnp.float32)}
    tx = entry.make()
    try:
        got, _ = run(entry, tx, params, [ints, ints])
    except (TypeError, ValueError) as e:
        assert "dtype" in str(e) or "integer" in str(e) or "float" in str(e), str(e)
        return
    want, _ = run(entry, tx, params, [floats, floats])
    for g, w in zip(got, want, strict=True):
        assert jnp.issubdtype(g["w"].dtype, jnp.floating), g["w"].dtype
        np.testing.assert_allclose(np.asarray(g["w"], np.float64), np.asarray(w["w"]), rtol=1e-5)


# ----------------------------------------------------------------------------
# issue 11 item 8: foreign states


def _foreign_pair(a, b, params):
    """Feed ``b``'s state to ``a``'s update: refused unless the states are alike."""
    ta, tb = a.make(), b.make()
    own, foreign = ta.init(params), tb.init(params)
    if signature(own) == signature(foreign) and jax.tree.map(type, own) == jax.tree.map(
        type, foreign
    ):
        return  # the same kind of state (two configurations of one factory, say)
    with pytest.raises((ValueError, TypeError)):
        a.update(ta, _fixed_grads(), foreign, params)


@scaled(10)
@given(a=st.sampled_from(ANY_SHAPE), b=st.sampled_from(ANY_SHAPE))
def test_foreign_state_is_refused(a, b):
    counted()
    _foreign_pair(a, b, _fixed_params())


def test_adam_refuses_amsgrad_state():
    _foreign_pair(BY_NAME_["adam"], BY_NAME_["amsgrad"], _fixed_params())


# ----------------------------------------------------------------------------
# issue 11 items 9-11: schedules at boundaries (jit against eager) and at large steps

from gradopt import schedules  # noqa: E402


def _jit_equals_eager(schedule, steps):
    steps = np.asarray(sorted(set(int(s) for s in steps if 0 <= s < 2**31 - 1)), np.int32)
    eager = np.asarray([float(schedule(jnp.asarray(s, jnp.int32))) for s in steps])
    jitted = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))
    np.testing.assert_array_equal(jitted, eager.astype(jitted.dtype), err_msg=str(steps))


@scaled(10)
@given(
    size=st.integers(1, 200),
    kind=st.sampled_from(["step", "exponential", "inverse_time"]),
)
@example(size=41, kind="step")  # the example (one step late under jit before the fix)
def test_staircase_schedules_jit_equals_eager_at_every_boundary(size, kind):
    counted()
    make = {
        "step": lambda: schedules.step(1.0, size, 0.5),
        "exponential": lambda: schedules.exponential(1.0, 0.5, size, staircase=True),
        "inverse_time": lambda: schedules.inverse_time(1.0, 0.5, size, staircase=True),
    }[kind]
    _jit_equals_eager(make(), [i * size + d for i in range(1, 6) for d in (-1, 0, 1)])


@scaled(3)
@given(size=st.integers(1, 200), data=st.data())
def test_smooth_schedules_jit_close_to_eager(size, data):
    counted()
    schedule = data.draw(
        st.sampled_from(
            [
                schedules.cosine(1.0, size),
                schedules.linear(1.0, 0.1, size),
                schedules.polynomial(1.0, 0.0, size, 2.0),
                schedules.warmup(schedules.cosine(1.0, size), size),
                schedules.exponential(1.0, 0.5, size),
            ]
        )
    )
    steps = np.asarray([0, 1, size - 1, size, size + 1, 10 * size], np.int32)
    eager = np.asarray([float(schedule(jnp.asarray(s, jnp.int32))) for s in steps])
    jitted = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-7)


def test_cyclic_cosine_at_ten_million_steps():
    # The cyclic cosine keeps following 0.5 (1 + cos(pi t / T)), period 2T = 6 (as
    # torch's CosineAnnealingLR does past T): 10**7 = 6 * 1666666 + 4, so the value
    # is 0.5 (1 + cos(4 pi / 3)) = 0.25, the exact value.
    value = float(schedules.cosine(1.0, 3, cyclic=True)(10**7))
    np.testing.assert_allclose(value, 0.5 * (1 + math.cos(4 * math.pi / 3)), rtol=1e-5)


def test_onecycle_with_a_one_step_warmup_is_finite():
    values = [float(schedules.onecycle(1, 10, pct_start=0.1)(k)) for k in range(10)]
    assert all(math.isfinite(v) for v in values), values


# ----------------------------------------------------------------------------
# issue 8 problems 1-2: chain laws over random chains of primitives

_WRAPPERS = ("skip_nonfinite", "accumulate", "inject_hyperparams", "packed", "reduce_on_plateau")
PRIMITIVES = [
    e
    for e in REGISTRY
    if not e.optimizer
    and not e.extra_args
    and not e.stochastic
    and not e.name.startswith(("compat.", *_WRAPPERS))
]


def _chain_updates(tx, params, grads):
    state = tx.init(params)
    outs = []
    for g in grads:
        u, state = tx.update(g, state, params)
        outs.append(u)
    return outs


def _assert_same(a, b):
    """Equal up to rounding: a fused chain rounds a bfloat16 leaf once, a nested
    one at each boundary (1 ulp of bfloat16 is 2**-8 relative)."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        low = jnp.dtype(x.dtype).itemsize < 4
        np.testing.assert_allclose(
            np.asarray(x, np.float64),
            np.asarray(y, np.float64),
            rtol=2**-7 if low else 1e-5,
            atol=2**-7 if low else 1e-6,
        )


@scaled(10)
@given(stages=st.lists(st.sampled_from(PRIMITIVES), min_size=3, max_size=3))
def test_chain_is_associative_and_the_same_inside_optax_chain(stages):
    counted()
    a, b, c = (e.make() for e in stages)
    params = _fixed_params()
    grads = [_fixed_grads(), _fixed_grads(scale=-0.5)]
    flat = _chain_updates(gradopt.chain(a, b, c), params, grads)
    _assert_same(_chain_updates(gradopt.chain(a, gradopt.chain(b, c)), params, grads), flat)
    _assert_same(_chain_updates(gradopt.chain(gradopt.chain(a, b), c), params, grads), flat)
    _assert_same(_chain_updates(optax.chain(a, b, c), params, grads), flat)


def test_clipping_in_front_of_adam_primitives_is_associative():
    """issue 8 problem 1: the clipped gradient reaches every stage after the clip."""
    stages = [
        gradopt.ema(0.9),
        gradopt.bias_correction(0.9),
        gradopt.scale_by_rms(0.999, eps=1e-8, debias=True),
        gradopt.scale_by_learning_rate(1e-2),
    ]
    clip = gradopt.clip_by_global_norm(0.5)
    params = _fixed_params()
    grads = [_fixed_grads(scale=s) for s in (3.0, -2.0, 1.0)]
    flat = _chain_updates(gradopt.chain(clip, *stages), params, grads)
    _assert_same(_chain_updates(gradopt.chain(clip, gradopt.chain(*stages)), params, grads), flat)
    # issue 8 problem 2: the same stages inside optax.chain are the same optimizer
    _assert_same(_chain_updates(optax.chain(clip, *stages), params, grads), flat)
