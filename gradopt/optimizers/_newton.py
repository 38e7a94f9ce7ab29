"""Newton's method and its matrix-free relatives: Gauss-Newton, Levenberg-Marquardt, Hessian-free.

Each is ``chain(<curvature solve>, scale_by_learning_rate(learning_rate))``:
the first stage returns ``d`` with ``(B + lambda I) d = g``, the second steps
by ``-learning_rate * d``. They need the objective in ``update`` (the extra
arguments ``value_fn=`` or ``residual_fn=``; see
:mod:`gradopt.transforms._objective`).
"""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain
from gradopt.core._checks import check_learning_rate
from gradopt.transforms._curvature import NEWTON_MAX_PARAMS, scale_by_newton
from gradopt.transforms._matrix_free import scale_by_gauss_newton, scale_by_hessian_free
from gradopt.transforms._scale import scale_by_learning_rate


def newton(
    learning_rate=1.0, damping=0.0, *, max_params: int = NEWTON_MAX_PARAMS
) -> GradientTransformation:
    r"""Damped Newton's method with the exact Hessian.

    With ``x`` the parameters flattened into one real vector of length ``n``::

        H = hessian(f)(x)                      # jax.hessian, n x n
        d = solve(H + damping * I, g)
        x = x - learning_rate * d

    On a quadratic with ``damping = 0`` and ``learning_rate = 1`` one step
    lands on the minimiser. ``H`` need not be positive definite: far from a
    minimum of a non-convex loss the step may climb; damping (Levenberg's
    ``lambda I``) shortens it and turns it towards the gradient.

    ``update(grad, state, params, value_fn=f, **data)``: ``f(params, **data)``
    is the loss (keywords named like ``f``'s arguments are passed to it).

    Cost per step: the Hessian (``n`` Hessian-vector products, about ``2 n``
    gradients' work; ``jax.hessian`` uses forward-over-reverse) and an
    ``O(n^3)`` solve. Memory ``n^2`` numbers. Refused (ValueError when the
    update is traced) above ``max_params`` parameters (default 4096).

    Args:
      learning_rate: step multiplier (1 for the Newton step), a number or schedule.
      damping: ``lambda >= 0`` added to the diagonal of ``H``.
      max_params: the largest ``n`` accepted. Keyword only.

    Returns:
      ``chain(scale_by_newton(damping), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> f = lambda w: 0.5 * (w[0] ** 2 + 39.0 * w[1] ** 2)
      >>> opt, w = gradopt.newton(), jnp.array([1.0, 1.0])
      >>> updates, _ = opt.update(jax.grad(f)(w), opt.init(w), w, value_fn=f)
      >>> gradopt.apply_updates(w, updates)  # the minimum, in one step
      Array([0., 0.], dtype=float32)

    Note:
      optax, PyTorch and Keras ship no Newton method.

      Complex parameters are realified: ``x`` holds the real and the
      imaginary parts (``n`` counts a complex entry twice), ``H`` is the real
      ``n x n`` Hessian of the loss in ``x``, and ``g`` (the conjugate of
      ``jax.grad``, as for any update) its gradient in ``x``; no ``n/2 x n/2``
      complex matrix would do, since the Hessian of a real loss in complex
      parameters is not complex-linear (docs: Complex parameters).

    References:
      Nocedal & Wright, Numerical Optimization, 2nd ed., 2006, chapter 3.3;
      Levenberg, A method for the solution of certain non-linear problems in
      least squares, Quart. Appl. Math. 1944 (the damping).
    """
    check_learning_rate("gradopt.newton", learning_rate)
    return chain(
        scale_by_newton(damping, max_params=max_params), scale_by_learning_rate(learning_rate)
    )


def gauss_newton(
    learning_rate=1.0, damping=1e-6, *, max_cg_steps: int = 50, cg_tol=1e-6
) -> GradientTransformation:
    r"""Gauss-Newton for least squares, matrix-free.

    For the loss ``f(w) = 0.5 |r(w)|^2`` with Jacobian ``J = dr/dw``::

        g = J^T r
        solve (J^T J + damping * I) d = g      # conjugate gradient; J v by jvp, J^T u by vjp
        w = w - learning_rate * d

    ``update(grad, state, params, residual_fn=r, **data)`` with ``grad``
    the gradient of ``0.5 |r|^2``.

    Cost per step: one linearisation of ``r`` and per CG iteration one ``jvp``
    and one ``vjp`` (about two gradients), at most ``max_cg_steps``. Memory:
    a few copies of the parameters (CG's vectors) and the linearisation.

    Args:
      learning_rate: step multiplier, a number or schedule.
      damping: ``lambda >= 0``, keeps the system definite when ``J`` is rank deficient.
      max_cg_steps: CG iteration cap. Keyword only.
      cg_tol: relative residual at which CG stops. Keyword only.

    Returns:
      ``chain(scale_by_gauss_newton(damping), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> r = lambda w: jnp.array([w[0] - 1.0, 3.0 * (w[1] + 2.0)])
      >>> f = lambda w: 0.5 * jnp.sum(r(w) ** 2)
      >>> opt, w = gradopt.gauss_newton(damping=0.0), jnp.zeros(2)
      >>> updates, _ = opt.update(jax.grad(f)(w), opt.init(w), w, residual_fn=r)
      >>> gradopt.apply_updates(w, updates).round(4)  # linear residuals: one step
      Array([ 1., -2.], dtype=float32)

    Note:
      optax, PyTorch and Keras ship no Gauss-Newton; jaxopt's ``GaussNewton``
      solves the normal equations densely.

      Complex parameters work on their real and imaginary parts: the rule
      runs on the realified parameters, and complex residuals count as their
      real and imaginary parts (``0.5 |r|^2`` unchanged); the gradient given
      is the conjugate of ``jax.grad``, as for any update (docs: Complex
      parameters).

    References:
      Nocedal & Wright, Numerical Optimization, 2006, section 10.3.
    """
    check_learning_rate("gradopt.gauss_newton", learning_rate)
    return chain(
        scale_by_gauss_newton(damping, max_cg_steps=max_cg_steps, cg_tol=cg_tol),
        scale_by_learning_rate(learning_rate),
    )


def levenberg_marquardt(
    damping=1e-3, *, max_cg_steps: int = 50, cg_tol=1e-6
) -> GradientTransformation:
    r"""Levenberg-Marquardt: Gauss-Newton with adaptive damping, matrix-free.

    With ``d`` the Gauss-Newton solution of ``(J^T J + lambda I) d = g``
    (conjugate gradient, see :func:`gauss_newton`) and the gain ratio::

        rho = (f(w) - f(w - d)) / (m(0) - m(-d)),   m the quadratic model
        if rho > 0:  w = w - d;  lambda *= max(1/3, 1 - (2 rho - 1)^3);  nu = 2
        else:        (step rejected: the update is 0);  lambda *= nu;  nu *= 2

    ``update(grad, state, params, residual_fn=r, **data)``.

    Cost per step: that of :func:`gauss_newton` plus one evaluation of ``r``.

    Args:
      damping: the initial ``lambda > 0``.
      max_cg_steps, cg_tol: as in :func:`gauss_newton`. Keyword only.

    Returns:
      ``chain(scale_by_gauss_newton(damping, adaptive=True), scale_by_learning_rate(1.0))``.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> r = lambda w: jnp.array([w[0] ** 2 - 4.0, w[1] - 1.0])
      >>> f = lambda w: 0.5 * jnp.sum(r(w) ** 2)
      >>> opt, w = gradopt.levenberg_marquardt(), jnp.array([1.0, 0.0])
      >>> state = opt.init(w)
      >>> for _ in range(8):
      ...     updates, state = opt.update(jax.grad(f)(w), state, w, residual_fn=r)
      ...     w = gradopt.apply_updates(w, updates)
      >>> w.round(4)
      Array([2., 1.], dtype=float32)

    Note:
      The update of ``lambda`` is Nielsen's (1999), as in Madsen, Nielsen &
      Tingleff's notes; Marquardt's original multiplies or divides by 10.
      optax, PyTorch and Keras ship none.

      Complex parameters work on their real and imaginary parts, as in
      :func:`gauss_newton`.

    References:
      Levenberg 1944; Marquardt, An algorithm for least-squares estimation of
      nonlinear parameters, SIAM J. Appl. Math. 1963; Nielsen, Damping
      parameter in Marquardt's method, IMM-REP-1999-05.
    """
    return chain(
        scale_by_gauss_newton(damping, adaptive=True, max_cg_steps=max_cg_steps, cg_tol=cg_tol),
        scale_by_learning_rate(1.0),
    )


def hessian_free(
    learning_rate=1.0,
    damping=1.0,
    *,
    curvature: str = "hessian",
    adaptive: bool = True,
    max_cg_steps: int = 50,
    cg_tol=5e-4,
    warm_start=0.95,
) -> GradientTransformation:
    r"""Hessian-free optimisation (Martens, 2010): truncated Newton by conjugate gradient.

    With ``B`` the Hessian (``curvature="hessian"``: ``B v`` is a ``jvp`` of
    ``jax.grad``) or the Gauss-Newton matrix ``J^T J`` of a least-squares loss
    (``curvature="gauss_newton"``)::

        solve (B + lambda I) d = g by CG from warm_start * d_prev,
              at most max_cg_steps products, stopping at non-positive curvature
        rho = (f(w) - f(w - d)) / (m(0) - m(-d))
        lambda *= 3/2 if rho < 1/4;  lambda *= 2/3 if rho > 3/4
        w = w - learning_rate * d   if rho > 0, else the step is rejected

    ``update(grad, state, params, value=f(params), value_fn=f, **data)``
    (or ``residual_fn=r`` with ``curvature="gauss_newton"``).

    Cost per step: one linearisation of the gradient (about one gradient), one
    Hessian-vector product per CG iteration (about two gradients), one loss
    evaluation for ``rho`` (when ``adaptive``). Memory: about six copies of
    the parameters.

    Args:
      learning_rate: step multiplier (1 with adaptive damping), a number or schedule.
      damping: the initial ``lambda >= 0``.
      curvature: ``"hessian"`` or ``"gauss_newton"``. Keyword only.
      adaptive: adapt ``lambda`` and reject steps that raise the loss. Keyword only.
      max_cg_steps: CG iteration cap. Keyword only.
      cg_tol: relative residual at which CG stops. Keyword only.
      warm_start: the factor on the previous solution CG starts from, in [0, 1].

    Returns:
      ``chain(scale_by_hessian_free(...), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> f = lambda w: 0.5 * (w[0] ** 2 + 39.0 * w[1] ** 2)
      >>> opt, w = gradopt.hessian_free(damping=0.0, adaptive=False), jnp.array([1.0, 1.0])
      >>> updates, _ = opt.update(jax.grad(f)(w), opt.init(w), w, value_fn=f)
      >>> w = gradopt.apply_updates(w, updates)  # CG is exact in 2 steps in 2-D
      >>> bool(jnp.allclose(w, 0.0, atol=1e-5))
      True

    Note:
      Martens' full method adds the Gauss-Newton matrix of the output
      non-linearity (here only for least squares), backtracking over the CG
      iterates, a line search, and CG's preconditioner; here a step that does
      not lower the loss is rejected instead. optax, PyTorch and Keras ship none.

      Complex parameters work on their real and imaginary parts (CG on the
      curvature of the realified parameters); the gradient given is the
      conjugate of ``jax.grad``, as for any update (docs: Complex parameters).

    References:
      Martens, Deep learning via Hessian-free optimization, ICML 2010;
      Pearlmutter, Fast exact multiplication by the Hessian, Neural Comput. 1994.
    """
    check_learning_rate("gradopt.hessian_free", learning_rate)
    return chain(
        scale_by_hessian_free(
            damping,
            curvature=curvature,
            adaptive=adaptive,
            max_cg_steps=max_cg_steps,
            cg_tol=cg_tol,
            warm_start=warm_start,
        ),
        scale_by_learning_rate(learning_rate),
    )
