"""Complex parameters for the second-order methods (issues 18 and 19).

L-BFGS and the zoom line search support complex parameters as optax's do:
their inner products are ``Re <a, b>``, those of the realified parameters
``(Re, Im)``. Tested here:

* trajectories equal to ``optax.lbfgs`` (with and without the line search)
  and to optax's zoom line search on gradient descent, on a complex64
  least-squares problem (rtol 1e-5);
* optax's own check: L-BFGS on ``f(z)`` over complex ``z`` follows L-BFGS on
  the same function of the realified vector ``(Re z, Im z)``;
* the parabola and the Rosenbrock function of ``tests/test_complex.py`` in
  float32 and complex64, with the problem's loss as ``value_fn``;
* the gradient convention: ``grad=`` is the conjugate of ``jax.grad`` (the
  steepest-ascent direction), the gradient kept in the line search's state is
  ``jax.grad``'s own;
* the L-BFGS example of ``docs/complex.md`` runs as written.

Newton, Gauss-Newton, Levenberg-Marquardt and Hessian-free work on the
realified parameters: Newton's trajectory equals a NumPy float64
transcription with the realified gradient and Hessian written out; the
others run the real problems of ``tests/test_second_order.py`` with complex
parameters whose real and imaginary parts are the real ones, against the same
NumPy transcriptions. Sophia, Shampoo and SOAP refuse complex parameters at
``init`` (the registry's ``supports_complex=False`` entries are checked by
the conformance battery); the messages are checked here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from tests import test_second_order as real_problems
from tests.test_complex import DTYPES, abs_sq, parabola, rosenbrock
from tests.test_complex_rules import _docs_snippet
from tests.test_second_order import exp_np, exp_residuals, logistic, logistic_np

_rng = np.random.default_rng(7)


def _c(*shape):
    return (_rng.normal(size=shape) + 1j * _rng.normal(size=shape)).astype(np.complex64)


X, Y, Z = _c(20, 3), _c(20, 2), _c(20, 3)


def least_squares(p):
    """``0.5 sum |X w + Z conj(w) + b - Y|^2`` with complex ``w`` (3, 2) and ``b`` (2,).

    Widely linear: the ``conj(w)`` term makes the Hessian of the realified
    problem not complex-linear, so an L-BFGS that used the complex inner
    product ``<a, b>`` instead of ``Re <a, b>`` leaves optax's path (by 1e-2
    here; without the term the two agree to 2e-6 and the test could not tell).
    """
    r = X @ p["w"] + Z @ jnp.conj(p["w"]) + p["b"][None, :] - Y
    return 0.5 * jnp.sum(abs_sq(r))


START = {"w": jnp.asarray(_c(3, 2)), "b": jnp.zeros(2, jnp.complex64)}


def trajectory(opt, f, start, steps, *, pass_value=True):
    """Parameters after each step (one jitted step); the loop passes ``conj(grad)``."""

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(f)(params)
        grad = jax.tree.map(jnp.conj, grad)  # the steepest-ascent direction
        extra = {"value": value, "grad": grad} if pass_value else {}
        updates, state = opt.update(grad, state, params, value_fn=f, **extra)
        return optax.apply_updates(params, updates), state

    params, state, out = start, opt.init(start), []
    for _ in range(steps):
        params, state = step(params, state)
        out.append(params)
    return out, state


def _assert_close(ours, theirs, rtol=1e-5, atol=1e-6):
    for a, b in zip(ours, theirs, strict=True):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            assert x.dtype == y.dtype == jnp.complex64
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _max_abs(tree):
    return max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(tree))


# ----------------------------------------------------------------------------
# equal to optax on complex64 parameters

LBFGS_CASES = {
    "linesearch": {},
    "fixed-step": {"learning_rate": 0.5, "memory_size": 4, "linesearch": None},
}


@functools.cache
def ours_lbfgs(case):
    """gradopt's L-BFGS on the least-squares problem, 30 steps (shared by two tests)."""
    return trajectory(gradopt.lbfgs(**LBFGS_CASES[case]), least_squares, START, 30)[0]


@pytest.mark.parametrize("case", sorted(LBFGS_CASES))
def test_lbfgs_on_complex_least_squares_equals_optax(case):
    kwargs = LBFGS_CASES[case]
    ours = ours_lbfgs(case)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes real and complex dtypes
        theirs, _ = trajectory(optax.lbfgs(**kwargs), least_squares, START, 30)
    _assert_close(ours, theirs)
    # it solved the problem: the gradient vanished, far from the start
    assert _max_abs(jax.grad(least_squares)(ours[-1])) < 1e-3
    assert _max_abs(jax.tree.map(jnp.subtract, ours[-1], START)) > 0.1


def test_zoom_linesearch_on_complex_gradient_descent_equals_optax():
    """Steepest descent with the previous step as first guess and a step cap; the
    state keeps the value and jax.grad's gradient at the new parameters."""
    ours_tx = gradopt.chain(
        gradopt.scale(-1.0), gradopt.scale_by_zoom_linesearch(15, max_learning_rate=0.5)
    )
    theirs_tx = optax.chain(
        optax.scale(-1.0), optax.scale_by_zoom_linesearch(15, max_learning_rate=0.5)
    )
    ours, state = trajectory(ours_tx, least_squares, START, 30)
    with jax.numpy_dtype_promotion("standard"):
        theirs, _ = trajectory(theirs_tx, least_squares, START, 30)
    _assert_close(ours, theirs)
    np.testing.assert_allclose(state[1].value, least_squares(ours[-1]), rtol=1e-5)
    for a, b in zip(
        jax.tree.leaves(state[1].grad),
        jax.tree.leaves(jax.grad(least_squares)(ours[-1])),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_the_line_search_computes_the_same_gradient_when_not_given():
    """Without ``value=``/``grad=`` the search evaluates ``value_fn`` itself; the
    gradient it computes is jax.grad's, whose conjugate it takes for the slope."""
    ours, _ = trajectory(gradopt.lbfgs(), least_squares, START, 30, pass_value=False)
    _assert_close(ours, ours_lbfgs("linesearch"))


# ----------------------------------------------------------------------------
# optax's check: complex z and the realified (Re z, Im z) follow the same path

M = jnp.asarray([[1, -2], [3, 4], [-4 + 2j, 5 - 3j], [-2 - 2j, 6]], jnp.complex64)
C = jnp.asarray([1.0 + 1j, -2.0, 0.5j, 3.0 - 1j], jnp.complex64)


def f_complex(z):
    """A real, non-quadratic function of complex z (optax's test_lbfgs_complex, shifted
    by ``C`` so that the minimiser is not 0)."""
    return jnp.sum(jnp.abs(M @ z - C) ** 1.5)


def f_real(x):
    return f_complex(jax.lax.complex(x[0], x[1]))


def test_lbfgs_on_complex_z_follows_lbfgs_on_the_realified_vector():
    """With the line search, as optax's test (the fixed step is covered above)."""
    z0 = jnp.asarray([1 - 1j, 1j], jnp.complex64)
    x0 = jnp.stack([z0.real, z0.imag])
    zs, _ = trajectory(gradopt.lbfgs(), f_complex, z0, 25)
    xs, _ = trajectory(gradopt.lbfgs(), f_real, x0, 25)
    got = np.stack([np.asarray(z) for z in zs])
    want = np.stack([np.asarray(x[0]) + 1j * np.asarray(x[1]) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert float(f_complex(zs[-1])) < 0.9 * float(f_complex(z0))


# ----------------------------------------------------------------------------
# the parabola and Rosenbrock, float32 and complex64, with their loss


@pytest.mark.parametrize("name", ["lbfgs", "newton"])
def test_reaches_the_parabola_and_rosenbrock_optima_in_float32_and_complex64(name):
    """200 jitted steps (far fewer than the issue's 10,000 suffice), one program."""
    opt = getattr(gradopt, name)()
    problems = [make(dtype) for make in (parabola, rosenbrock) for dtype in DTYPES]

    def solve(start, loss):
        def body(carry, _):
            w, state = carry
            value, g = jax.value_and_grad(loss)(w)
            g = jnp.conj(g)
            updates, state = opt.update(g, state, w, value=value, grad=g, value_fn=loss)
            return (gradopt.apply_updates(w, updates), state), None

        return jax.lax.scan(body, (start, opt.init(start)), None, length=200)[0][0]

    finals = jax.jit(
        lambda starts: [solve(s, p[2]) for s, p in zip(starts, problems, strict=True)]
    )([p[0] for p in problems])
    for (start, target, _), final in zip(problems, finals, strict=True):
        assert final.dtype == start.dtype
        np.testing.assert_allclose(np.asarray(final), np.asarray(target), rtol=3e-2, atol=3e-2)


# ----------------------------------------------------------------------------
# Newton on the realified parameters, against NumPy float64

A_N, B_N, QUARTIC = _c(6, 3).astype(np.complex128), _c(6).astype(np.complex128), 0.3


def newton_loss(p):
    """``0.5 |A z - b|^2 + 0.25 c sum |z_k|^4`` for complex ``z``, plus
    ``0.5 |s|^2 + 0.25 c sum s^4`` for a real leaf ``s`` next to it."""
    r = jnp.asarray(A_N, jnp.complex64) @ p["z"] - jnp.asarray(B_N, jnp.complex64)
    s = p["s"]
    return (
        0.5 * jnp.sum(abs_sq(r))
        + 0.25 * QUARTIC * jnp.sum(abs_sq(p["z"]) ** 2)
        + jnp.sum(0.5 * s**2 + 0.25 * QUARTIC * s**4)
    )


def newton_numpy(z, s, steps, learning_rate, damping):
    """Damped Newton in float64 on ``x = (Re z, Im z)`` with the gradient and Hessian
    written out: ``M = [[Re A, -Im A], [Im A, Re A]]``, ``r = M x - (Re b, Im b)``."""
    n = z.shape[0]
    m = np.block([[A_N.real, -A_N.imag], [A_N.imag, A_N.real]])
    b = np.concatenate([B_N.real, B_N.imag])
    x = np.concatenate([z.real, z.imag]).astype(np.float64)
    s = s.astype(np.float64)
    out = []
    for _ in range(steps):
        u, v = x[:n], x[n:]
        q = u * u + v * v
        grad = m.T @ (m @ x - b) + QUARTIC * np.concatenate([q * u, q * v])
        hess = m.T @ m
        k = np.arange(n)
        hess[k, k] += QUARTIC * (q + 2 * u * u)
        hess[k + n, k + n] += QUARTIC * (q + 2 * v * v)
        hess[k, k + n] += QUARTIC * 2 * u * v
        hess[k + n, k] += QUARTIC * 2 * u * v
        x = x - learning_rate * np.linalg.solve(hess + damping * np.eye(2 * n), grad)
        g_s, h_s = s + QUARTIC * s**3, 1.0 + 3 * QUARTIC * s**2
        s = s - learning_rate * g_s / (h_s + damping)
        out.append((x[:n] + 1j * x[n:], s))
    return out


@pytest.mark.parametrize(("learning_rate", "damping"), [(1.0, 0.0), (0.7, 0.5)])
def test_newton_on_complex_parameters_equals_numpy_on_the_realified_problem(learning_rate, damping):
    start = {"z": jnp.asarray(_c(3)), "s": jnp.asarray([1.5, -0.8], jnp.float32)}
    opt = gradopt.newton(learning_rate, damping)
    ours, _ = trajectory(opt, newton_loss, start, 6)
    want = newton_numpy(np.asarray(start["z"]), np.asarray(start["s"]), 6, learning_rate, damping)
    for got, (z, s) in zip(ours, want, strict=True):
        assert got["z"].dtype == jnp.complex64 and got["s"].dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(got["z"]), z, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(got["s"]), s, rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(want[-1][0] - np.asarray(start["z"]))) > 0.1


# ----------------------------------------------------------------------------
# Gauss-Newton, Levenberg-Marquardt and Hessian-free on the realified parameters:
# the real problems of tests/test_second_order.py with complex parameters whose
# real and imaginary parts are the real parameters, against the same NumPy
# float64 transcriptions


def complex_exp_residuals(p):
    """The exponential fit with ``c = a + i k``: amplitude ``Re c``, rate ``Im c``."""
    return exp_residuals({"a": jnp.real(p["c"]), "k": jnp.imag(p["c"])})


def run_complex_least_squares(opt, steps):
    @jax.jit
    def step(params, state):
        grad = jax.grad(lambda p: 0.5 * jnp.sum(complex_exp_residuals(p) ** 2))(params)
        grad = jax.tree.map(jnp.conj, grad)
        updates, state = opt.update(grad, state, params, residual_fn=complex_exp_residuals)
        return gradopt.apply_updates(params, updates), state

    params = {"c": jnp.asarray(1.0 + 0.5j, jnp.complex64)}
    state, out = opt.init(params), []
    for _ in range(steps):
        params, state = step(params, state)
        out.append(complex(params["c"]))
    return out


def test_gauss_newton_on_complex_parameters_equals_numpy_on_the_real_problem():
    ours = run_complex_least_squares(gradopt.gauss_newton(damping=1e-3, cg_tol=1e-7), 5)
    a, k = 1.0, 0.5
    for c in ours:
        r, jac = exp_np(a, k)
        d = np.linalg.solve(jac.T @ jac + 1e-3 * np.eye(2), jac.T @ r)
        a, k = a - d[0], k - d[1]
        np.testing.assert_allclose([c.real, c.imag], [a, k], rtol=1e-4, atol=1e-5)


def test_levenberg_marquardt_on_complex_parameters_equals_numpy_on_the_real_problem():
    ours = run_complex_least_squares(gradopt.levenberg_marquardt(damping=10.0, cg_tol=1e-7), 8)
    a, k, lam, nu = 1.0, 0.5, 10.0, 2.0
    for c in ours:
        r, jac = exp_np(a, k)
        g = jac.T @ r
        d = np.linalg.solve(jac.T @ jac + lam * np.eye(2), g)
        r1, _ = exp_np(a - d[0], k - d[1])
        rho = (0.5 * r @ r - 0.5 * r1 @ r1) / (0.5 * (d @ g + lam * d @ d))
        if rho > 0:
            a, k = a - d[0], k - d[1]
            lam, nu = lam * max(1 / 3, 1 - (2 * rho - 1) ** 3), 2.0
        else:
            lam, nu = lam * nu, 2 * nu
        np.testing.assert_allclose([c.real, c.imag], [a, k], rtol=1e-4, atol=1e-5)
    r, _ = exp_np(a, k)
    assert 0.5 * r @ r < 0.02


def complex_logistic(p):
    """The logistic regression with its six weights as three complex ones (Re, then Im)."""
    w = jnp.concatenate([jnp.real(p["z"]), jnp.imag(p["z"])])
    return logistic({"w": w, "b": p["b"]})


def test_hessian_free_on_complex_parameters_equals_numpy_on_the_real_problem():
    opt = gradopt.hessian_free(damping=0.5, max_cg_steps=20, cg_tol=1e-7)
    start = {"z": jnp.zeros(3, jnp.complex64), "b": jnp.asarray(0.0)}
    ours, state = trajectory(opt, complex_logistic, start, 5)
    w, b, lam = np.zeros(6), 0.0, 0.5

    def loss_np(w, b):
        z = real_problems.X.astype(np.float64) @ w + b
        return np.mean(np.logaddexp(0.0, z) - real_problems.Y * z) + 0.01 * w @ w

    for params in ours:
        g, h = logistic_np(w, b)
        d = np.linalg.solve(h + lam * np.eye(7), g)
        rho = (loss_np(w, b) - loss_np(w - d[:6], b - d[6])) / (0.5 * (g @ d + lam * d @ d))
        if rho > 0:
            w, b = w - d[:6], b - d[6]
        lam = lam * 1.5 if rho < 0.25 else lam * (2 / 3) if rho > 0.75 else lam
        z = np.asarray(params["z"])
        np.testing.assert_allclose(np.concatenate([z.real, z.imag]), w, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(params["b"], b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(state[0].damping, lam, rtol=1e-4)
    assert np.max(np.abs(w)) > 0.1


# ----------------------------------------------------------------------------
# the matrix methods refuse complex parameters at init, saying why

REFUSING = {
    "gradopt.sophia": (lambda: gradopt.sophia(), "2 x 2 real curvature block"),
    "gradopt.shampoo": (lambda: gradopt.shampoo(), "Hermitian G G^H"),
    "gradopt.soap": (lambda: gradopt.soap(), "Hermitian statistics"),
}


@pytest.mark.parametrize("name", sorted(REFUSING))
def test_matrix_methods_refuse_complex_parameters_with_a_reason(name):
    make, reason = REFUSING[name]
    params = {"w": jnp.ones((2, 2), jnp.complex64)}
    with pytest.raises(TypeError, match="supports real parameters only") as info:
        make().init(params)
    assert name in str(info.value) and reason in str(info.value)
    make().init({"w": jnp.ones((2, 2))})  # real parameters: accepted


def test_docs_complex_lbfgs_runs(capsys):
    namespace: dict = {"__name__": "docs_snippet"}
    exec(compile(_docs_snippet("complex-lbfgs"), "complex.md", "exec"), namespace)  # noqa: S102
    assert "loss" in capsys.readouterr().out
    w = namespace["w"]
    assert w.dtype == jnp.complex64
    assert float(namespace["loss"](w)) < 1e-8
