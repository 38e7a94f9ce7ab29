"""``real_only``: the refusal of complex parameters by a rule that has no complex form.

Most rules extend to complex parameters in one standard way (first moments
complex, second moments ``|g|**2``, see ``docs/complex.md``). A few do not: a
sign-based step (the sign of a complex number is not a step direction), Rprop's
sign changes, and rules their authors define on real numbers only. Such a rule
is wrapped in :func:`real_only`, which refuses complex parameters at ``init``
(and complex updates in ``update``) with a TypeError that names the optimizer.

The wrapper keeps the inner transform's state unchanged, and an elementwise
inner transform stays elementwise, so a chain still fuses it with its
neighbours.
"""

from __future__ import annotations

from gradopt.core._base import GradientTransformation, call_update, transform
from gradopt.core._checks import refuse_complex
from gradopt.core._elementwise import Node, from_node, node_of


class RealOnly(Node):
    """An elementwise node that refuses complex parameters, else its child unchanged."""

    def __init__(self, child: Node, name: str, reason: str):
        self.child, self.name, self.reason = child, name, reason
        self._key = ("real_only", child, name, reason)

    def __repr__(self) -> str:
        return f"real_only({self.child!r}, name={self.name!r})"

    def init(self, params):
        refuse_complex(self.name, params, self.reason)
        return self.child.init(params)

    def needs_params(self) -> bool:
        return self.child.needs_params()

    def prepare(self, state, flatten):
        return self.child.prepare(state, flatten)

    def dtypes(self, prep, i):
        return self.child.dtypes(prep, i)

    def view(self, prep, i):
        return self.child.view(prep, i)

    def leaf(self, x, prep, i, p):
        refuse_complex(self.name, x, self.reason)
        return self.child.leaf(x, prep, i, p)

    def finish(self, prep, news, unflatten):
        return self.child.finish(prep, news, unflatten)


def _real_only_init(params, *, inner, name, reason):
    refuse_complex(name, params, reason)
    return inner.init(params)


def _real_only_update(updates, state, params=None, *, inner, name, reason, **extra):
    refuse_complex(name, updates, reason)
    return call_update(inner, updates, state, params, extra)


def real_only(inner, *, name: str, reason: str = "") -> GradientTransformation:
    """``inner``, refusing complex parameters with a TypeError that names ``name``.

    ``init`` raises on a complex parameter leaf and ``update`` (at trace time)
    on a complex update leaf; real trees pass to ``inner`` unchanged. The
    state is ``inner``'s own, and an elementwise ``inner`` stays fused in a
    chain.

    Args:
      inner: the gradient transformation of a rule without a complex form.
      name: the public name the error message gives, e.g. ``"gradopt.lion"``.
        Keyword only.
      reason: why the rule has no complex form, e.g. ``"the sign of a complex
        number is not a step"``, appended to the message. Keyword only.

    Returns:
      A gradient transformation with ``inner``'s state.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.real_only(gradopt.sgd(0.1), name="my_sign_sgd")
      >>> state = opt.init({"w": jnp.ones(2)})  # real parameters: as sgd
      >>> opt.init({"w": jnp.ones(2, jnp.complex64)})
      Traceback (most recent call last):
      ...
      TypeError: my_sign_sgd supports real parameters only, but the leaf at ['w'] ...
    """
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            f"gradopt.real_only: inner is {inner!r}, which is not a gradient transformation. "
            "Pass an optimizer such as gradopt.sgd(0.1)."
        )
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"gradopt.real_only: name must be the optimizer's public name (a non-empty str), "
            f"got {name!r}."
        )
    if not isinstance(reason, str):
        raise TypeError(f"gradopt.real_only: reason must be a str, got {reason!r}.")
    node = node_of(inner)
    if node is not None:
        return from_node(RealOnly(node, name, reason))
    return transform(_real_only_init, _real_only_update, inner=inner, name=name, reason=reason)
