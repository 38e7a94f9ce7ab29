"""Registry entries of the second-order methods and matrix preconditioners (issue 18).

Primitives are not swept where their named optimizer is (each sweep compiles a
vmapped program). The methods that evaluate the loss themselves (line search, Newton, Gauss-Newton,
Hessian-free) get ``extra_args`` with a loss that works on any parameter tree
(:func:`objective`, :func:`residuals`) and ``needs_objective=True``; the
battery's gradients are random, so the loss and the gradient disagree, which
the methods must survive (a line search then finds a short step, a damped
solve a finite one). Their convergence is tested in tests/test_second_order.py
on problems where ``value_fn`` is the loss.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

import gradopt
from tests.registry import DECAY, NONNEGATIVE, POSITIVE, Convergence, Entry, Range


def objective(params):
    """``sum 0.5 |x|^2 + 0.05 |x|^4`` over every leaf: smooth, convex, any tree (complex
    leaves too: a real function of their modulus, so a turn by a phase leaves it unchanged).

    ``|x|^2`` is written as ``Re(x)^2 + Im(x)^2``, not through ``jnp.abs``: JAX
    differentiates ``abs`` at 0 as 0, so its second derivatives there would make
    the Hessian of a complex entry at 0 vanish (it is the identity), and an undamped
    Newton step would divide by zero."""
    total = jnp.zeros([], jnp.float32)
    for x in jax.tree.leaves(params):
        x = jnp.asarray(x)
        if jnp.iscomplexobj(x):
            sq = jnp.real(x).astype(jnp.float32) ** 2 + jnp.imag(x).astype(jnp.float32) ** 2
        else:
            sq = x.astype(jnp.float32) ** 2
        total = total + jnp.sum(0.5 * sq + 0.05 * sq * sq)
    return total


def residuals(params):
    """``x + 0.1 x^3`` for every entry of every leaf, as one float32 vector; with complex
    leaves ``x + 0.1 x |x|^2``, one complex64 vector (``0.5 |r|^2`` is then unchanged by
    a phase, and on real entries the same)."""
    leaves = [jnp.ravel(jnp.asarray(x)) for x in jax.tree.leaves(params)]
    if any(jnp.iscomplexobj(x) for x in leaves):
        x = jnp.concatenate([x.astype(jnp.complex64) for x in leaves])
        return x + 0.1 * x * (jnp.real(x) ** 2 + jnp.imag(x) ** 2).astype(jnp.complex64)
    leaves = [x.astype(jnp.float32) for x in leaves]
    x = jnp.concatenate(leaves) if leaves else jnp.zeros([0], jnp.float32)
    return x + 0.1 * x**3


VALUE = {"value_fn": objective}
RESIDUAL = {"residual_fn": residuals}
LR = {"learning_rate": NONNEGATIVE}
CG = {"cg_tol": NONNEGATIVE}

ENTRIES = [
    Entry(
        "scale_by_lbfgs",
        gradopt.scale_by_lbfgs,
        kwargs={"memory_size": 2},
        needs_params=True,
        flags=("scale_init_precond",),
    ),
    Entry(
        "scale_by_zoom_linesearch",
        gradopt.scale_by_zoom_linesearch,
        kwargs={"max_linesearch_steps": 4},
        needs_params=True,
        needs_objective=True,
        extra_args=VALUE,
        low_precision=False,  # the search compares losses: bfloat16 rounding picks other steps
        ranges={
            "max_learning_rate": POSITIVE,
            "tol": NONNEGATIVE,
            "increase_factor": Range(1.0, None, low_open=True),
            "slope_rtol": Range(0.0, 1.0, low_open=True, high_open=True),
            "curv_rtol": Range(0.0, 1.0, low_open=True, high_open=True),
            "stepsize_precision": NONNEGATIVE,
        },
    ),
    Entry(
        "lbfgs",
        gradopt.lbfgs,
        static_args=("memory_size",),
        kwargs={"memory_size": 2},
        optimizer=True,
        needs_params=True,
        needs_objective=True,
        extra_args=VALUE,
        low_precision=False,
        flags=("scale_init_precond",),
    ),
    Entry(
        "scale_by_newton",
        gradopt.scale_by_newton,
        kwargs={"damping": 0.1},
        needs_params=True,
        needs_objective=True,
        extra_args=VALUE,
        ranges={"damping": NONNEGATIVE},
    ),
    Entry(
        "newton",
        gradopt.newton,
        static_args=("max_params",),
        optimizer=True,
        needs_params=True,
        needs_objective=True,
        extra_args=VALUE,
        sweepable={"learning_rate": (0.1, 0.5, 1.0), "damping": (0.0, 0.5, 2.0)},
        ranges={**LR, "damping": NONNEGATIVE},
        callable_ok=("learning_rate",),
    ),
    Entry(
        "scale_by_gauss_newton",
        gradopt.scale_by_gauss_newton,
        kwargs={"damping": 0.1, "max_cg_steps": 3},
        needs_params=True,
        needs_objective=True,
        extra_args=RESIDUAL,
        ranges={"damping": NONNEGATIVE, **CG},
        flags=("adaptive",),
    ),
    Entry(
        "gauss_newton",
        gradopt.gauss_newton,
        static_args=("max_cg_steps",),
        kwargs={"max_cg_steps": 3},
        optimizer=True,
        needs_params=True,
        needs_objective=True,
        extra_args=RESIDUAL,
        sweepable={"learning_rate": (0.1, 0.5, 1.0)},
        ranges={**LR, "damping": NONNEGATIVE, **CG},
        callable_ok=("learning_rate",),
    ),
    Entry(
        "levenberg_marquardt",
        gradopt.levenberg_marquardt,
        static_args=("max_cg_steps",),
        kwargs={"max_cg_steps": 3},
        optimizer=True,
        needs_params=True,
        needs_objective=True,
        extra_args=RESIDUAL,
        # no sweep: with the battery's random gradients every step is rejected
        ranges={"damping": POSITIVE, **CG},
        reevaluates=True,  # so it may not move: it compares losses before a step
    ),
    Entry(
        "scale_by_hessian_free",
        gradopt.scale_by_hessian_free,
        kwargs={"max_cg_steps": 3, "adaptive": False},
        needs_params=True,
        needs_objective=True,
        extra_args=VALUE,
        ranges={"damping": NONNEGATIVE, "warm_start": Range(0.0, 1.0), **CG},
        flags=("adaptive",),
    ),
    Entry(
        "hessian_free",
        gradopt.hessian_free,
        static_args=("max_cg_steps",),
        kwargs={"max_cg_steps": 3, "adaptive": False},
        optimizer=True,
        needs_params=True,
        needs_objective=True,
        extra_args=VALUE,
        sweepable={"learning_rate": (0.1, 0.5, 1.0)},
        ranges={**LR, "damping": NONNEGATIVE, "warm_start": Range(0.0, 1.0), **CG},
        callable_ok=("learning_rate",),
    ),
    Entry(
        "hessian_free-gauss_newton",
        gradopt.hessian_free,
        kwargs={"max_cg_steps": 3, "curvature": "gauss_newton"},
        needs_params=True,
        needs_objective=True,
        extra_args=RESIDUAL,
    ),
]

ENTRIES += [
    Entry(
        "scale_by_shampoo",
        gradopt.scale_by_shampoo,
        kwargs={"block_size": 2, "precondition_every": 2},
        ranges={
            "beta2": Range(0.0, 1.0),
            "eps": POSITIVE,
            "graft_eps": POSITIVE,
            "graft_b2": DECAY,
        },
    ),
    Entry(
        "shampoo",
        gradopt.shampoo,
        static_args=("block_size", "precondition_every", "start_preconditioning_step"),
        kwargs={"learning_rate": 0.1, "block_size": 2},
        optimizer=True,
        sweepable={"learning_rate": (0.01, 0.1, 0.3), "b1": (0.0, 0.5, 0.9)},
        ranges={
            **LR,
            "b1": Range(0.0, 1.0, high_open=True),
            "beta2": Range(0.0, 1.0),
            "eps": POSITIVE,
            "weight_decay": NONNEGATIVE,
        },
        callable_ok=("learning_rate",),
        converges={
            "quadratic": Convergence({"learning_rate": 0.05}, 300),
            "rosenbrock": Convergence({"learning_rate": 0.02}, 5000),
        },
    ),
    Entry(
        "shampoo-newton-late",
        gradopt.shampoo,
        kwargs={
            "learning_rate": 0.1,
            "root": "newton",
            "start_preconditioning_step": 3,
            "graft": "sgd",
            "precondition_every": 2,
        },
    ),
    Entry(
        "scale_by_soap",
        gradopt.scale_by_soap,
        kwargs={"precondition_every": 2},
        ranges={"b1": DECAY, "b2": DECAY, "eps": POSITIVE},
    ),
    Entry(
        "soap",
        gradopt.soap,
        static_args=("precondition_every", "max_precond_dim"),
        kwargs={"learning_rate": 0.1},
        optimizer=True,
        sweepable={"learning_rate": (0.01, 0.1, 0.3)},
        ranges={**LR, "b1": DECAY, "b2": DECAY, "eps": POSITIVE, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
        converges={"quadratic": Convergence({"learning_rate": 0.05}, 300)},
    ),
    Entry(
        "scale_by_sophia",
        gradopt.scale_by_sophia,
        kwargs={"update_interval": 2},
        needs_params=True,
        needs_objective=True,
        extra_args=VALUE,
        ranges={"b1": DECAY, "b2": DECAY, "eps": POSITIVE, "gamma": POSITIVE},
    ),
    Entry(
        "sophia",
        gradopt.sophia,
        static_args=("update_interval", "seed"),
        kwargs={"learning_rate": 0.1, "update_interval": 2},
        optimizer=True,
        needs_params=True,
        needs_objective=True,
        extra_args=VALUE,
        sweepable={"learning_rate": (0.01, 0.1, 0.3)},
        ranges={**LR, "b1": DECAY, "b2": DECAY, "eps": POSITIVE, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
    ),
]


# Complex parameters (docs/complex.md): L-BFGS and the zoom line search use the
# real inner product Re <a, b> of the realified parameters, as optax's do;
# Newton, Gauss-Newton, Levenberg-Marquardt and Hessian-free work on the
# realified parameters; Sophia, Shampoo and SOAP refuse complex parameters at
# init (gradopt.real_only).
COMPLEX = {
    "scale_by_lbfgs",
    "scale_by_zoom_linesearch",
    "lbfgs",
    "scale_by_newton",
    "newton",
    "scale_by_gauss_newton",
    "gauss_newton",
    "levenberg_marquardt",
    "scale_by_hessian_free",
    "hessian_free",
    "hessian_free-gauss_newton",
}

# Their curvature buffers and line-search state are built with plain jnp
# constructors (default device): see Entry.sharded_init.
ENTRIES = [
    dataclasses.replace(e, sharded_init=False, supports_complex=e.name in COMPLEX) for e in ENTRIES
]
