"""``realified``: a real rule on complex parameters, through their real and imaginary parts.

A real loss of complex parameters ``w = x + i y`` is a real function of the
real vector ``(x, y)``. For methods whose rule is defined on that vector and
has no preferred complex form, the complex form *is* the rule on ``(x, y)``:
Gauss-Newton and Hessian-free (curvature products, conjugate gradient with
the real inner product). :func:`realified` runs such a rule there:

* each complex leaf ``w`` becomes the real leaf ``stack([Re w, Im w])``
  (parameters, the incoming update, ``grad=``) and back for the output;
* ``value_fn`` and ``residual_fn`` are called on the complex parameters
  rebuilt from that real view; complex residuals ``r`` become
  ``concatenate([Re r, Im r])``, so ``0.5 |r|^2`` is unchanged.

The incoming update follows gradopt's convention for complex parameters, the
conjugate of ``jax.grad`` (``g = df/dx + i df/dy``): its real view
``(df/dx, df/dy)`` is the gradient on ``(x, y)``. Trees without complex
leaves pass to the inner transform unchanged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, call_update, transform

_FUNCTIONS = ("value_fn", "residual_fn")


def _is_complex(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.complexfloating)


def _has_complex(tree) -> bool:
    return any(_is_complex(x) for x in jax.tree.leaves(tree))


def realify(tree):
    """Each complex leaf ``w`` as the real leaf ``stack([Re w, Im w])``; real leaves as they are."""
    return jax.tree.map(
        lambda x: jnp.stack([jnp.real(x), jnp.imag(x)]) if _is_complex(x) else x, tree
    )


def complexify(tree, like):
    """The inverse of :func:`realify` for the leaves that are complex in ``like``."""
    return jax.tree.map(
        lambda x, p: (
            jax.lax.complex(x[0], x[1]).astype(jnp.result_type(p)) if _is_complex(p) else x
        ),
        tree,
        like,
    )


def _as_real_residual(r):
    r = jnp.asarray(r)
    if not _is_complex(r):
        return r
    return jnp.concatenate([jnp.real(r).ravel(), jnp.imag(r).ravel()])


def _on_real_view(fn, like, residual):
    """``fn`` called on the real view (its signature kept for keyword routing)."""

    @functools.wraps(fn)
    def real_fn(x, *args, **kwargs):
        out = fn(complexify(x, like), *args, **kwargs)
        return _as_real_residual(out) if residual else out

    return real_fn


def _realified_init(params, *, inner):
    return inner.init(realify(params))


def _realified_update(updates, state, params=None, *, inner, **extra):
    if params is None or not _has_complex(params):
        return call_update(inner, updates, state, params, extra)
    extra = dict(extra)
    for name in _FUNCTIONS:
        if extra.get(name) is not None:
            extra[name] = _on_real_view(extra[name], params, residual=name == "residual_fn")
    if extra.get("grad") is not None:
        extra["grad"] = realify(extra["grad"])
    real_updates, state = call_update(inner, realify(updates), state, realify(params), extra)
    return complexify(real_updates, updates), state


def realified(inner) -> GradientTransformation:
    """``inner`` run on the real and imaginary parts of complex parameters.

    Args:
      inner: a gradient transformation whose rule is defined on real vectors.

    Returns:
      A transform whose state is ``inner``'s state on the real view of the
      parameters (complex leaves as ``(2, *shape)`` real leaves).
    """
    return transform(_realified_init, _realified_update, inner=inner)
