"""L-BFGS and the zoom line search against optax; Newton, Gauss-Newton,
Levenberg-Marquardt and Hessian-free against NumPy float64 transcriptions.

Each reference is written from the method's equations (dense matrices in
NumPy), never from gradopt. Problems are tiny so that every test compiles a
few small programs.
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt


def rosenbrock(p):
    x = p["x"]
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


ROSEN_START = {"x": jnp.asarray([-1.2, 1.0, -0.5, 0.8, 1.1])}

_rng = np.random.default_rng(0)
X = _rng.normal(size=(40, 6)).astype(np.float32)
Y = (X @ _rng.normal(size=6) + 0.5 * _rng.normal(size=40) > 0).astype(np.float32)


def logistic(p, x=X, y=Y):
    """Mean logistic loss plus a small ridge: convex, with a unique minimiser."""
    z = x @ p["w"] + p["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.01 * jnp.sum(p["w"] ** 2)


LOGISTIC_START = {"w": jnp.zeros(6), "b": jnp.asarray(0.0)}


def trajectory(opt, f, start, steps, **extra):
    """Parameters after each step, one jitted step function."""

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(f)(params)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=f, **extra
        )
        return optax.apply_updates(params, updates), state

    params, state, out = start, opt.init(start), []
    for _ in range(steps):
        params, state = step(params, state)
        out.append(params)
    return out, state


# ----------------------------------------------------------------------------
# L-BFGS and the zoom line search: equal to optax with the same arguments


@pytest.mark.parametrize(
    ("f", "start"), [(rosenbrock, ROSEN_START), (logistic, LOGISTIC_START)], ids=["rosen", "logit"]
)
def test_lbfgs_equals_optax(f, start):
    ours, _ = trajectory(gradopt.lbfgs(), f, start, 50)
    theirs, _ = trajectory(optax.lbfgs(), f, start, 50)
    for a, b in zip(ours, theirs, strict=True):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    final_grad = jax.grad(f)(ours[-1])
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(final_grad)) < 1e-3


def test_lbfgs_memory_and_learning_rate_equal_optax():
    """A fixed multiplier and a short memory. The two differ by one rounding in the
    first step here, which Rosenbrock's valley amplifies (1e-4 after 17 steps),
    so the comparison stops after 8 steps."""
    kwargs = {"learning_rate": 0.5, "memory_size": 3, "scale_init_precond": False}
    ours, _ = trajectory(gradopt.lbfgs(**kwargs), rosenbrock, ROSEN_START, 8)
    theirs, _ = trajectory(optax.lbfgs(**kwargs), rosenbrock, ROSEN_START, 8)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a["x"], b["x"], rtol=1e-5, atol=1e-5)


def test_zoom_linesearch_on_gradient_descent_equals_optax():
    """Steepest descent, the previous step as first guess ("keep"), a step cap."""
    ours_tx = gradopt.chain(
        gradopt.scale(-1.0), gradopt.scale_by_zoom_linesearch(15, max_learning_rate=0.5)
    )
    theirs_tx = optax.chain(
        optax.scale(-1.0), optax.scale_by_zoom_linesearch(15, max_learning_rate=0.5)
    )
    ours, state = trajectory(ours_tx, rosenbrock, ROSEN_START, 30)
    theirs, _ = trajectory(theirs_tx, rosenbrock, ROSEN_START, 30)
    np.testing.assert_allclose(ours[-1]["x"], theirs[-1]["x"], rtol=1e-5, atol=1e-6)
    # the state holds the value at the new parameters, for reuse by the caller
    np.testing.assert_allclose(state[1].value, rosenbrock(ours[-1]), rtol=1e-5)


def test_lbfgs_checkpoint_resumes_exactly(tmp_path):
    opt = gradopt.lbfgs(memory_size=4)
    full, _ = trajectory(opt, rosenbrock, ROSEN_START, 12)
    first, state = trajectory(opt, rosenbrock, ROSEN_START, 6)
    path = tmp_path / "ckpt.pkl"
    leaves, treedef = jax.tree.flatten((first[-1], state))
    path.write_bytes(pickle.dumps([np.asarray(x) for x in leaves]))
    params, state = jax.tree.unflatten(
        treedef, [jnp.asarray(x) for x in pickle.loads(path.read_bytes())]
    )

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(rosenbrock)(params)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=rosenbrock
        )
        return gradopt.apply_updates(params, updates), state

    for _ in range(6):
        params, state = step(params, state)
    np.testing.assert_array_equal(params["x"], full[-1]["x"])


def test_objective_keywords_reach_value_fn():
    """A batch passed by name goes to value_fn (optax's protocol)."""
    opt = gradopt.lbfgs()
    half = {"x": X[:20], "y": Y[:20]}
    ours, _ = trajectory(opt, logistic, LOGISTIC_START, 3, **half)
    theirs, _ = trajectory(optax.lbfgs(), logistic, LOGISTIC_START, 3, **half)
    np.testing.assert_allclose(ours[-1]["w"], theirs[-1]["w"], rtol=1e-5, atol=1e-6)


def test_missing_objective_is_explained():
    opt = gradopt.lbfgs()
    state = opt.init(ROSEN_START)
    with pytest.raises(TypeError, match="value_fn="):
        opt.update(ROSEN_START, state, ROSEN_START)


# ----------------------------------------------------------------------------
# Newton, against NumPy's Hessian of the logistic loss


def logistic_np(w, b):
    z = X.astype(np.float64) @ w + b
    s = 1.0 / (1.0 + np.exp(-z))
    n = X.shape[0]
    xa = np.hstack([X.astype(np.float64), np.ones((n, 1))])
    grad = xa.T @ (s - Y) / n
    grad[:6] += 0.02 * w
    hess = xa.T @ (xa * (s * (1 - s))[:, None]) / n
    hess[:6, :6] += 0.02 * np.eye(6)
    return grad, hess


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_newton_matches_numpy(damping):
    opt = gradopt.newton(learning_rate=0.8, damping=damping)
    ours, _ = trajectory(opt, logistic, LOGISTIC_START, 4)
    w, b = np.zeros(6), 0.0
    for params in ours:
        g, h = logistic_np(w, b)
        d = np.linalg.solve(h + damping * np.eye(7), g)
        w, b = w - 0.8 * d[:6], b - 0.8 * d[6]
        np.testing.assert_allclose(params["w"], w, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(params["b"], b, rtol=2e-4, atol=2e-5)


def test_newton_one_step_on_the_valley():
    """Hessian eigenvalues 1 and 39: the undamped step lands on the minimum."""
    f = lambda p: 0.5 * (p[0] ** 2 + 39.0 * p[1] ** 2)  # noqa: E731
    w = jnp.asarray([2.0, -1.5])
    opt = gradopt.newton()
    updates, _ = opt.update(jax.grad(f)(w), opt.init(w), w, value_fn=f)
    np.testing.assert_allclose(gradopt.apply_updates(w, updates), [0.0, 0.0], atol=1e-6)


def test_newton_refuses_large_problems():
    opt = gradopt.newton(max_params=10)
    w = jnp.zeros(11)
    with pytest.raises(ValueError, match="max_params=10"):
        opt.update(w, opt.init(w), w, value_fn=lambda p: jnp.sum(p**2))


# ----------------------------------------------------------------------------
# Gauss-Newton and Levenberg-Marquardt: an exponential fit


T = np.linspace(0.0, 2.0, 12)
OBS = 2.0 * np.exp(-1.3 * T) + 0.05 * np.sin(7.0 * T)


def exp_residuals(p):
    return p["a"] * jnp.exp(-p["k"] * jnp.asarray(T, jnp.float32)) - jnp.asarray(OBS, jnp.float32)


def exp_np(a, k):
    e = np.exp(-k * T)
    r = a * e - OBS
    jac = np.stack([e, -a * T * e], axis=1)
    return r, jac


EXP_START = {"a": jnp.asarray(1.0), "k": jnp.asarray(0.5)}


def run_least_squares(opt, steps):
    @jax.jit
    def step(params, state):
        grad = jax.grad(lambda p: 0.5 * jnp.sum(exp_residuals(p) ** 2))(params)
        updates, state = opt.update(grad, state, params, residual_fn=exp_residuals)
        return gradopt.apply_updates(params, updates), state

    params, state, out = EXP_START, opt.init(EXP_START), []
    for _ in range(steps):
        params, state = step(params, state)
        out.append(params)
    return out


def test_gauss_newton_matches_numpy():
    ours = run_least_squares(gradopt.gauss_newton(damping=1e-3, cg_tol=1e-7), 5)
    a, k = 1.0, 0.5
    for params in ours:
        r, jac = exp_np(a, k)
        d = np.linalg.solve(jac.T @ jac + 1e-3 * np.eye(2), jac.T @ r)
        a, k = a - d[0], k - d[1]
        np.testing.assert_allclose([params["a"], params["k"]], [a, k], rtol=1e-4, atol=1e-5)


def test_levenberg_marquardt_matches_numpy():
    """Nielsen's rule, transcribed: accept when the gain ratio is positive."""
    ours = run_least_squares(gradopt.levenberg_marquardt(damping=10.0, cg_tol=1e-7), 8)
    a, k, lam, nu = 1.0, 0.5, 10.0, 2.0
    accepted = 0
    for params in ours:
        r, jac = exp_np(a, k)
        g = jac.T @ r
        d = np.linalg.solve(jac.T @ jac + lam * np.eye(2), g)
        r1, _ = exp_np(a - d[0], k - d[1])
        rho = (0.5 * r @ r - 0.5 * r1 @ r1) / (0.5 * (d @ g + lam * d @ d))
        if rho > 0:
            a, k = a - d[0], k - d[1]
            lam, nu = lam * max(1 / 3, 1 - (2 * rho - 1) ** 3), 2.0
            accepted += 1
        else:
            lam, nu = lam * nu, 2 * nu
        np.testing.assert_allclose([params["a"], params["k"]], [a, k], rtol=1e-4, atol=1e-5)
    assert accepted >= 4
    r, _ = exp_np(a, k)
    assert 0.5 * r @ r < 0.02


# ----------------------------------------------------------------------------
# Hessian-free: CG solves exactly on a small problem; Martens' damping rule


def test_hessian_free_matches_numpy():
    opt = gradopt.hessian_free(damping=0.5, max_cg_steps=20, cg_tol=1e-7)
    ours, state = trajectory(opt, logistic, LOGISTIC_START, 5)
    w, b, lam = np.zeros(6), 0.0, 0.5

    def loss_np(w, b):
        z = X.astype(np.float64) @ w + b
        return np.mean(np.logaddexp(0.0, z) - Y * z) + 0.01 * w @ w

    for params in ours:
        g, h = logistic_np(w, b)
        d = np.linalg.solve(h + lam * np.eye(7), g)
        pred = 0.5 * (g @ d + lam * d @ d)
        rho = (loss_np(w, b) - loss_np(w - d[:6], b - d[6])) / pred
        if rho > 0:
            w, b = w - d[:6], b - d[6]
        lam = lam * 1.5 if rho < 0.25 else lam * (2 / 3) if rho > 0.75 else lam
        np.testing.assert_allclose(params["w"], w, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(state[0].damping, lam, rtol=1e-4)
    assert int(state[0].cg_steps) <= 7 * 5  # CG is exact in at most 7 steps in 7 dimensions


# ----------------------------------------------------------------------------
# parameters without entries: no leaves, or zero-size leaves (make fuzz draws them)


def squares(p):
    """``sum |x|^2`` over every leaf; 0.0 for a tree without entries."""
    return sum((jnp.sum(jnp.square(x)) for x in jax.tree.leaves(p)), jnp.zeros([]))


EMPTY = {}
PAIR = {"x": jnp.asarray([1.0, -2.0])}
MIXED = {"w": jnp.zeros((0, 3)), "b": None, **PAIR}  # a zero-size leaf, a None, an entry


def _without_entries(opt):
    """The update of an empty tree (empty) and of MIXED (its zero-size leaf zero-size)."""
    update = jax.jit(opt.update, static_argnames="value_fn")
    empty, _ = update(EMPTY, opt.init(EMPTY), EMPTY, value_fn=squares)
    assert empty == {}
    got, _ = update(jax.grad(squares)(MIXED), opt.init(MIXED), MIXED, value_fn=squares)
    assert jax.tree.structure(got) == jax.tree.structure(MIXED)
    assert got["w"].shape == (0, 3) and got["w"].dtype == jnp.float32
    return got["x"]


# squares: gradient g = 2 x, Hessian 2 I, at x = (1, -2)
G = 2.0 * np.asarray(PAIR["x"], np.float64)


def test_newton_on_trees_without_entries():
    want = -np.linalg.solve(2.0 * np.eye(2), G)  # -x, whatever the zero-size leaf
    np.testing.assert_allclose(_without_entries(gradopt.newton()), want, rtol=1e-6)


def test_lbfgs_on_trees_without_entries():
    # The first direction is gamma_0 g with gamma_0 = min(1, 1/|g|); the line search
    # tries the step 1 first and keeps it: f drops from 5 to (sqrt 5 - 1)^2 (Armijo)
    # and the slope from -|g| = -4.47 to -2.47 (strong Wolfe with curv_rtol 0.9).
    want = -G / np.linalg.norm(G)
    np.testing.assert_allclose(_without_entries(gradopt.lbfgs(memory_size=2)), want, rtol=1e-6)


def test_torch_lbfgs_on_trees_without_entries():
    update = _without_entries(gradopt.compat.torch.lbfgs(max_iter=2))
    assert np.all(np.isfinite(update))
    assert squares(jnp.asarray(PAIR["x"]) + update) < squares(PAIR)  # a descent step
