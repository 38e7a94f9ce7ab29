"""gradopt.testing: the conformance battery for your own gradient transformations.

``check_transform(tx, params)`` runs the checks gradopt runs on every transform it
ships (stable state, no recompilation, jit and no-jit agree, shapes and dtypes
kept, bfloat16, vmap, inside ``gradopt.chain`` and ``optax.chain``; with
``complex_params=True`` the same on complex parameters and two laws of complex
rules) and raises an ``AssertionError`` that says what broke and how to fix it.
``check_refuses_complex(tx, params, name=...)`` checks that a real-only rule
refuses complex parameters.
:mod:`gradopt.testing.strategies` has Hypothesis strategies for random parameter
trees (``import gradopt.testing.strategies`` needs ``hypothesis``).

chex and optax are needed when the checks run (``pip install chex optax``);
``import gradopt`` does not import them, nor this module.
"""

from gradopt.testing._check import CheckResult, check_refuses_complex, check_transform

__all__ = ["CheckResult", "check_refuses_complex", "check_transform"]
