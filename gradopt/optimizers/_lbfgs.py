"""L-BFGS with the zoom line search: ``chain(scale_by_lbfgs, scale(-1) or lr, linesearch)``."""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain, identity
from gradopt.core._checks import check_learning_rate
from gradopt.transforms._lbfgs import scale_by_lbfgs
from gradopt.transforms._linesearch import scale_by_zoom_linesearch
from gradopt.transforms._scale import scale, scale_by_learning_rate

_DEFAULT_LINESEARCH = scale_by_zoom_linesearch(20, initial_guess_strategy="one")


def lbfgs(
    learning_rate=None,
    memory_size: int = 10,
    *,
    scale_init_precond: bool = True,
    linesearch: GradientTransformation | None = _DEFAULT_LINESEARCH,
) -> GradientTransformation:
    r"""L-BFGS (Liu & Nocedal, 1989) with a strong-Wolfe line search.

    With ``g_k`` the gradient at ``w_k`` and the last ``m`` pairs
    ``s_i = w_{i+1} - w_i``, ``y_i = g_{i+1} - g_i``, ``rho_i = 1 / <y_i, s_i>``::

        H_k = V_{k-1}^T ... V_{k-m}^T (gamma_k I) V_{k-m} ... V_{k-1} + (rank-one terms)
        V_i = I - rho_i y_i s_i^T,   gamma_k = <s_{k-1}, y_{k-1}> / <y_{k-1}, y_{k-1}>
        d_k = -H_k g_k              (two-loop recursion, O(m d))
        eta_k = zoom line search on f(w_k + eta d_k)   (strong Wolfe, first try 1)
        w_{k+1} = w_k + eta_k d_k

    The first step uses ``gamma_0 = min(1, 1 / |g_0|)``.

    ``update`` needs the objective (optax's protocol)::

        value, grad = jax.value_and_grad(f)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                    value_fn=f, **data)

    Keyword arguments named like ``f``'s own arguments (a batch) are passed to it.

    Cost per step: one two-loop recursion (4 m d flops) and one value and
    gradient per line-search trial (usually one trial: ``eta = 1`` is
    accepted). Memory: ``2 m + 2`` copies of the parameters, plus the line
    search's gradient.

    Args:
      learning_rate: None (the step is the line search's) or a fixed
        multiplier of the direction before the search (a number or schedule).
      memory_size: pairs kept, an int >= 1.
      scale_init_precond: scale the initial inverse Hessian by ``gamma_k``.
        Keyword only.
      linesearch: the step-size stage (default: the zoom line search with
        at most 20 trials, trying 1 first); None for a fixed step.

    Returns:
      ``chain(scale_by_lbfgs(memory_size), scale(-1) | scale_by_learning_rate(lr),
      linesearch)``.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> f = lambda w: jnp.sum((w - 3.0) ** 2)
      >>> opt, w = gradopt.lbfgs(), jnp.zeros(2)
      >>> state = opt.init(w)
      >>> for _ in range(3):
      ...     value, grad = jax.value_and_grad(f)(w)
      ...     updates, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
      ...     w = gradopt.apply_updates(w, updates)
      >>> w
      Array([3., 3.], dtype=float32)

    Note:
      Same transform as ``optax.lbfgs`` with the same arguments (tested to
      rtol 1e-5 over 50 steps). PyTorch's ``torch.optim.LBFGS`` runs several
      iterations per ``step(closure)``, has no line search by default
      (``line_search_fn="strong_wolfe"`` opts in) and scales the first step by
      ``min(1, 1/|g|_1)``. Keras has no L-BFGS.

      Complex parameters are supported as in optax: every inner product is
      ``Re <a, b>``, that of the realified ``(Re w, Im w)``, so the path is the
      one on the realified vector (tested, and equal to ``optax.lbfgs`` on
      complex64). ``grad=`` is the conjugate of ``jax.grad``, like the
      gradient given to the update (docs: Complex parameters).

    References:
      Nocedal, Updating quasi-Newton matrices with limited storage, Math.
      Comp. 1980; Liu & Nocedal, On the limited memory BFGS method for large
      scale optimization, Math. Prog. 1989; Nocedal & Wright, Numerical
      Optimization 2006, Algorithms 7.4 and 3.5-3.6.
    """
    where = "gradopt.lbfgs"
    if learning_rate is not None:
        check_learning_rate(where, learning_rate)
    if linesearch is not None and not hasattr(linesearch, "update"):
        raise TypeError(
            f"{where}: linesearch must be a transform (such as "
            f"gradopt.scale_by_zoom_linesearch(20)) or None, got {linesearch!r}."
        )
    base = scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate)
    return chain(
        scale_by_lbfgs(memory_size, scale_init_precond=scale_init_precond),
        base,
        identity() if linesearch is None else linesearch,
    )
