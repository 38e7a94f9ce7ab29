"""gradopt.testing: the conformance battery for your own gradient transformations.

``check_transform(tx, params)`` runs the checks gradopt runs on every transform it
ships (stable state, no recompilation, jit and no-jit agree, shapes and dtypes
kept, bfloat16, vmap, inside ``gradopt.chain`` and ``optax.chain``) and raises an
``AssertionError`` that says what broke and how to fix it.
:mod:`gradopt.testing.strategies` has Hypothesis strategies for random parameter
trees (``import gradopt.testing.strategies`` needs ``hypothesis``).

chex and optax are needed when the checks run (``pip install chex optax``);
``import gradopt`` does not import them, nor this module.
"""

from gradopt.testing._check import CheckResult, check_transform

__all__ = ["CheckResult", "check_transform"]
