"""Complex parameters (issue 19): the statistics' dtypes, low precision, packed buffers,
clipping and noise on the modulus, refusals and their messages, the docs section
(``docs/complex.md``) as written, and the kit's complex checks failing where they should.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from tests.test_complex import _run, _tree, abs_sq

# ----------------------------------------------------------------------------
# the statistics' dtypes; low precision; packed buffers


def test_first_moments_are_complex_and_second_moments_real(x64):
    params = {"w": jnp.ones((2, 2), jnp.complex64), "x": jnp.ones(3, jnp.complex128)}
    state = gradopt.adam(1e-3).init(params)
    (_, ((ema_state, _), rms_state), _) = state
    assert {k: v.dtype for k, v in ema_state.ema.items()} == {
        "w": jnp.complex64,
        "x": jnp.complex128,
    }
    assert {k: v.dtype for k, v in rms_state.nu.items()} == {"w": jnp.float32, "x": jnp.float64}
    adagrad = gradopt.adagrad(initial_accumulator_value=0.1).init(params)
    assert adagrad[1].sum_of_squares["w"].dtype == jnp.float32


def test_bfloat16_options_apply_to_the_real_statistics():
    """nu_dtype=bfloat16 stores the real second moment in bfloat16; mu_dtype=bfloat16 sets
    the precision of the complex first moment, complex64 (JAX has no complex bfloat16)."""
    params, grads = _tree((jnp.complex64,))
    low = gradopt.adam(0.01, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)
    state = low.init(params)
    assert state[1][0][0].ema["complex64"].dtype == jnp.complex64
    assert state[1][1].nu["complex64"].dtype == jnp.bfloat16
    got = _run(low, params, grads)
    want = _run(gradopt.adam(0.01), params, grads)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.dtype == jnp.complex64
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=3e-2, atol=1e-4)


def test_packed_and_pack_params_keep_a_complex_buffer_per_dtype():
    params, grads = _tree((jnp.float32, jnp.complex64))
    params["z"] = jnp.asarray(0.5 - 1j, jnp.complex64)
    grads = [{**g, "z": jnp.asarray(0.25 + 0.5j, jnp.complex64)} for g in grads]
    flat, unpack = gradopt.pack_params(params)
    assert sorted(b.dtype.name for b in flat["packed"]) == ["complex64", "float32"]

    @jax.jit
    def runs(params, grads, flat, unpack):
        want = _run(gradopt.adam(0.01), params, grads)
        got = _run(gradopt.packed(gradopt.adam(0.01)), params, grads)
        packed = _run(gradopt.adam(0.01), flat, [unpack.pack(g) for g in grads])
        loss = lambda f: sum(jnp.sum(abs_sq(x)) for x in jax.tree.leaves(unpack(f)))  # noqa: E731
        return want, got, unpack(packed[-1]), jax.grad(loss)(flat)

    want, got, from_flat, g = runs(params, grads, flat, unpack)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), from_flat, want[-1]
    )
    assert [b.dtype for b in g["packed"]] == [b.dtype for b in flat["packed"]]


def test_clipping_acts_on_the_modulus_and_keeps_the_phase():
    z = {"w": jnp.asarray([3 + 4j, 0.3 - 0.4j], jnp.complex64)}

    @jax.jit
    def clipped(z):
        by_value = gradopt.clip(1.0).update(z, gradopt.EmptyState())[0]
        by_norm = gradopt.clip_by_global_norm(1.0).update(z, gradopt.EmptyState())[0]
        return by_value, by_norm, gradopt.global_norm(z)

    by_value, by_norm, norm = clipped(z)
    np.testing.assert_allclose(np.asarray(by_value["w"]), [0.6 + 0.8j, 0.3 - 0.4j], rtol=1e-6)
    np.testing.assert_allclose(float(norm), np.sqrt(25.25), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(by_norm["w"]), np.asarray(z["w"]) / np.sqrt(25.25), rtol=1e-6
    )


def test_complex_noise_has_the_variance_of_the_schedule():
    tx = gradopt.add_gradient_noise(eta=0.5, gamma=0.0, seed=3)
    z = {"w": jnp.zeros(20_000, jnp.complex64)}
    noisy, _ = jax.jit(tx.update)(z, tx.init(z))
    n = np.asarray(noisy["w"])
    assert abs(np.mean(np.abs(n) ** 2) - 0.5) < 0.02
    assert abs(np.var(n.real) - 0.25) < 0.02 and abs(np.var(n.imag) - 0.25) < 0.02


# ----------------------------------------------------------------------------
# refusals and their messages


def test_real_only_refuses_complex_at_init_naming_the_optimizer():
    real_only = gradopt.real_only(gradopt.sgd(0.1), name="gradopt.lion", reason="sign-based")
    params = {"w": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(TypeError, match=r"gradopt.lion supports real parameters only \(sign"):
        real_only.init(params)
    # inside a fused chain, and around a transform that is not elementwise
    fused = gradopt.chain(gradopt.ema(0.9), real_only)
    with pytest.raises(TypeError, match="supports real parameters only"):
        fused.init(params)
    opaque = gradopt.real_only(gradopt.clip_by_norm(1.0), name="gradopt.x")
    with pytest.raises(TypeError, match="gradopt.x supports real parameters only"):
        opaque.init(params)
    # real parameters: the inner transform's state and numbers, unchanged
    real = {"w": jnp.ones(2)}
    inner = gradopt.sgd(0.1)
    assert jax.tree.structure(real_only.init(real)) == jax.tree.structure(inner.init(real))
    state = real_only.init(real)
    with pytest.raises(TypeError, match="supports real parameters only"):
        real_only.update({"w": jnp.ones(2, jnp.complex64)}, state)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_compat_modules_refuse_complex(name):
    import gradopt.compat.keras
    import gradopt.compat.torch

    params = {"w": jnp.ones(2, jnp.complex64)}
    with pytest.raises(TypeError, match=f"gradopt.compat.torch.{name} supports real"):
        getattr(gradopt.compat.torch, name)().init(params)
    with pytest.raises(TypeError, match=f"gradopt.compat.keras.{name} supports real"):
        getattr(gradopt.compat.keras, name)().init(params)


def test_optax_inject_hyperparams_complex_values_are_refused_with_the_fix():
    params = {"w": jnp.ones(2, jnp.complex64)}
    with pytest.raises(TypeError, match="hyperparam_dtype=jnp.float32"):
        optax.inject_hyperparams(gradopt.adam)(learning_rate=0.1).init(params)


def test_integer_gradients_keep_their_message_and_complex_ones_are_accepted():
    tx = gradopt.adam(0.1)
    state = tx.init({"w": jnp.ones(2)})
    with pytest.raises(TypeError, match="an integer or boolean gradient would round"):
        tx.update({"w": jnp.ones(2, jnp.int32)}, state)
    z = {"w": jnp.ones(2, jnp.complex64)}
    updates, _ = tx.update(z, tx.init(z))
    assert updates["w"].dtype == jnp.complex64


def test_a_complex_gradient_for_a_real_parameter_is_refused():
    tx = gradopt.adam(0.1)
    params = {"w": jnp.ones(2)}
    with pytest.raises(TypeError, match="complex gradient needs a complex parameter"):
        tx.update({"w": jnp.ones(2, jnp.complex64)}, tx.init(params), params)
    with pytest.raises(ValueError, match="Complex updates need the state init builds"):
        tx.update({"w": jnp.ones(2, jnp.complex64)}, tx.init(params))
    with pytest.raises(TypeError, match="drop its imaginary part"):
        gradopt.apply_updates(params, {"w": jnp.ones(2, jnp.complex64)})


# ----------------------------------------------------------------------------
# the docs section runs as written


def _docs_snippet(marker: str) -> str:
    text = (Path(__file__).resolve().parent.parent / "docs" / "complex.md").read_text()
    match = re.search(rf"<!-- test: {re.escape(marker)} -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, f"no ```python block after <!-- test: {marker} --> in docs/complex.md"
    return match.group(1)


def test_docs_complex_least_squares_runs(capsys):
    namespace: dict = {"__name__": "docs_snippet"}
    exec(compile(_docs_snippet("complex-least-squares"), "complex.md", "exec"), namespace)  # noqa: S102
    assert "loss" in capsys.readouterr().out
    error = np.max(np.abs(np.asarray(namespace["w"]) - np.asarray(namespace["w_true"])))
    assert error < 1e-2, error
    assert namespace["w"].dtype == jnp.complex64


def test_docs_complex_model_runs(capsys):
    namespace: dict = {"__name__": "docs_snippet"}
    exec(compile(_docs_snippet("complex-model"), "complex.md", "exec"), namespace)  # noqa: S102
    assert "->" in capsys.readouterr().out
    assert float(namespace["value"]) < 0.5 * namespace["first"]
    assert namespace["params"]["b"].dtype == jnp.float32
    assert namespace["params"]["w1"].dtype == jnp.complex64


# ----------------------------------------------------------------------------
# the kit's complex checks fail where they should


def _stateless(fn):
    return gradopt.GradientTransformation(
        lambda params: gradopt.EmptyState(),
        lambda updates, state, params=None, **extra: (jax.tree.map(fn, updates), state),
    )


@pytest.mark.parametrize(
    ("fn", "check"),
    [
        # g * g where |g|**2 belongs: the step turns by twice the phase
        (lambda g: g * g / (1 + jnp.abs(g)).astype(g.dtype), "phase equivariance"),
        # torch.view_as_real style: the real and imaginary parts scaled on their own
        (
            lambda g: (
                jax.lax.complex(jnp.sign(jnp.real(g)), jnp.sign(jnp.imag(g)))
                if jnp.iscomplexobj(g)
                else jnp.sign(g)
            ),
            "phase equivariance",
        ),
        # the conjugate: right on the real axis, mirrored off it
        (jnp.conj, "phase equivariance"),
    ],
)
def test_check_transform_complex_laws_catch_rules_without_a_complex_form(fn, check):
    from gradopt.testing import check_transform

    params = {"w": jnp.asarray([[0.5, -1.0], [2.0, 0.25]])}
    check_transform(_stateless(fn), params, vmap=False, chains=False, bfloat16=False)
    with pytest.raises(AssertionError, match=check):
        check_transform(
            _stateless(fn), params, vmap=False, chains=False, bfloat16=False, complex_params=True
        )


def test_check_refuses_complex_fails_on_a_rule_that_accepts_complex():
    from gradopt.testing import check_refuses_complex

    with pytest.raises(AssertionError, match="init accepted complex parameters"):
        check_refuses_complex(gradopt.adam(1e-3), {"w": jnp.ones(2)}, name="gradopt.adam")
