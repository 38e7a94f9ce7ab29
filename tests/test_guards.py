"""skip_nonfinite, check_skips, all_finite and TerminateOnNaN."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt

NAN, INF = float("nan"), float("inf")


def _grads(values):
    """A sequence of gradient trees, one per value; the value goes into leaf 'b'."""
    w = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)
    return {
        "w": np.stack([w * (i + 1) for i in range(len(values))]),
        "b": np.array([[v, 1.0] for v in values], np.float32),
    }


def _scan(tx, grads):
    params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(2)}

    @jax.jit
    def run(grads):
        def step(state, g):
            u, state = tx.update(g, state, params)
            return state, (u, state)

        return jax.lax.scan(step, tx.init(params), grads)

    return run(grads)


def test_skips_nonfinite_steps_and_keeps_inner_state():
    values = [0.5, NAN, 0.25, INF, -INF, 2.0]
    finite = np.isfinite(values)
    guarded = gradopt.skip_nonfinite(gradopt.adam(0.1))
    final, (updates, states) = _scan(guarded, _grads(values))
    # Reference: adam fed only the finite steps, in order.
    kept = jax.tree.map(lambda x: x[finite], _grads(values))
    _, (ref_updates, _) = _scan(gradopt.adam(0.1), kept)
    for leaf, ref in zip(jax.tree.leaves(updates), jax.tree.leaves(ref_updates), strict=True):
        np.testing.assert_allclose(leaf[finite], ref, rtol=1e-6)
        assert np.all(leaf[~finite] == 0)
    np.testing.assert_array_equal(states.total_skipped, np.cumsum(~finite))
    np.testing.assert_array_equal(states.consecutive_skipped, [0, 1, 0, 1, 2, 0])
    assert not np.any(states.gave_up)
    # The wrapped state after a skipped step is the one before it, bit for bit.
    for leaf in jax.tree.leaves(states.inner_state):
        np.testing.assert_array_equal(leaf[1], leaf[0])
        np.testing.assert_array_equal(leaf[4], leaf[2])
    chex.assert_tree_all_finite(final.inner_state)
    gradopt.check_skips(final)  # did not give up: no error


def test_gives_up_after_max_consecutive_and_check_skips_raises():
    values = [1.0, NAN, NAN, 1.0, NAN, NAN, NAN, 1.0]
    tx = gradopt.skip_nonfinite(gradopt.sgd(0.1), max_consecutive=3)
    final, (updates, states) = _scan(tx, _grads(values))
    np.testing.assert_array_equal(states.gave_up, [0, 0, 0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(states.total_skipped, [0, 1, 2, 2, 3, 4, 5, 5])
    assert bool(final.gave_up)  # stays set after a finite step
    assert np.all(updates["b"][6] == 0)  # "report": still skipping
    with pytest.raises(gradopt.NonFiniteError, match="gave up after"):
        gradopt.check_skips(final)
    with pytest.raises(FloatingPointError):  # NonFiniteError is a FloatingPointError
        gradopt.check_skips((gradopt.EmptyState(), {"opt": final}))


def test_poison_lets_nonfinite_through_after_giving_up():
    values = [1.0, NAN, NAN, 1.0]
    tx = gradopt.skip_nonfinite(gradopt.sgd(0.1), max_consecutive=2, on_give_up="poison")
    _, (updates, states) = _scan(tx, _grads(values))
    assert np.all(updates["b"][1] == 0)  # first skip: zero
    assert np.isnan(updates["b"][2, 0])  # gave up at this step: passes through
    np.testing.assert_array_equal(states.gave_up, [0, 0, 1, 1])


def test_no_recompile_and_stable_state():
    tx = gradopt.skip_nonfinite(gradopt.adam(0.1), max_consecutive=2)
    params = {"w": jnp.zeros(3)}
    update = jax.jit(tx.update)
    s0 = tx.init(params)
    _, s1 = update({"w": jnp.ones(3)}, s0)
    _, s2 = update({"w": jnp.full(3, jnp.nan, jnp.float32)}, s1)
    chex.assert_trees_all_equal_shapes_and_dtypes(s0, s1, s2)
    assert update._cache_size() == 1


def test_all_finite():
    assert bool(gradopt.all_finite({"a": jnp.ones(3), "b": [jnp.zeros(())]}))
    assert not bool(gradopt.all_finite({"a": jnp.ones(3), "b": [jnp.array(jnp.inf)]}))
    assert not bool(jax.jit(gradopt.all_finite)(jnp.array([1.0, jnp.nan], jnp.bfloat16)))
    assert bool(gradopt.all_finite({}))


def test_terminate_on_nan():
    terminate = gradopt.TerminateOnNaN()
    assert not terminate(1.0)
    assert not terminate(jnp.float32(0.5))
    assert terminate(jnp.array(jnp.nan))
    assert terminate.stopped_step == 2
    # A guard that gave up also stops the loop.
    tx = gradopt.skip_nonfinite(gradopt.sgd(0.1), max_consecutive=1)
    state = tx.init({"w": jnp.zeros(2)})
    _, state = tx.update({"w": jnp.array([jnp.inf, 0.0])}, state)
    assert gradopt.TerminateOnNaN()(0.1, state)
    with pytest.raises(gradopt.NonFiniteError, match="loss"):
        gradopt.TerminateOnNaN(raise_error=True)(float("inf"))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"max_consecutive": 0}, ValueError),
        ({"max_consecutive": 1.5}, ValueError),
        ({"on_give_up": "raise"}, ValueError),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match="gradopt.skip_nonfinite"):
        gradopt.skip_nonfinite(gradopt.sgd(0.1), **kwargs)
    with pytest.raises(TypeError, match="gradopt.skip_nonfinite"):
        gradopt.skip_nonfinite(lambda g: g)
