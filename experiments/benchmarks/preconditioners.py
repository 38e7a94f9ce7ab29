"""Case 9: Shampoo and SOAP against Adam on the MLP and transformer trees.

The optimizer update alone (the gradient given), jitted: its time on a step
that refreshes the preconditioner and on one that does not (the refresh runs
inside a ``lax.cond``, so a non-refresh step should cost little more than
Adam's), compile time, and state bytes per parameter.

A non-refresh step still multiplies matrices: Shampoo updates both statistics
of every block and applies both roots (4 products per block), SOAP updates both
statistics and rotates the gradient and the momentum into the eigenbasis and the
step back (8 products per matrix). The "matrix products only" rows time exactly
those products, jitted on their own, in the same round: what is left of a
non-refresh step after them and Adam's step is the rest of the rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradopt
from experiments.benchmarks import models
from experiments.benchmarks.timing import compile_seconds, interleaved, log, summary
from gradopt.transforms._matrix_roots import blocks_of, cut, matrix_shape

EVERY = 10  # refresh period of both preconditioners


def _state_bytes(tx, params) -> int:
    shapes = jax.eval_shape(tx.init, params)
    return int(sum(np.prod(s.shape) * jnp.dtype(s.dtype).itemsize for s in jax.tree.leaves(shapes)))


def _at_count(state, count):
    """The same state with every int32 step counter set to ``count``."""

    def set_count(x):
        if jnp.result_type(x) == jnp.int32 and jnp.shape(x) == ():
            return jnp.asarray(count, jnp.int32)
        return x

    return jax.tree.map(set_count, state)


def _shampoo_products(block_size):
    """The 4 products per block of a non-refresh Shampoo step, nothing else."""

    def products(grads):
        out = []
        for g in jax.tree.leaves(grads):
            shape = matrix_shape(g.shape)
            if shape is None:
                continue
            for piece in cut(g.reshape(shape), blocks_of(shape, block_size)):
                left, right = piece @ piece.T, piece.T @ piece
                out.append(left @ piece @ right)
        return out

    return products


def _soap_products(grads):
    """The 8 products per matrix of a non-refresh SOAP step, nothing else."""
    out = []
    for g in jax.tree.leaves(grads):
        shape = matrix_shape(g.shape)
        if shape is None:
            continue
        gm = g.reshape(shape)
        left, right = gm @ gm.T, gm.T @ gm  # stand-ins for the bases: same shapes
        momentum = gm[::-1]  # another matrix of the shape: XLA cannot merge its products
        rotated = left.T @ gm @ right + left.T @ momentum @ right
        out.append(left @ rotated @ right.T)
    return out


def case_preconditioners(*, reps, depth, width, transformer=None):
    """Both trees; ``transformer`` is ``(blocks, d, vocab)`` or None (MLP only)."""
    params, data, loss = models.mlp(depth=depth, width=width)
    n = sum(p.size for p in jax.tree.leaves(params))
    rows = _one_tree(
        f"optimizer update, MLP {depth} x {width} ({2 * depth} leaves, {n:,} params)",
        params,
        jax.grad(loss)(params, data),
        reps,
    )
    if transformer is not None:
        blocks, d, vocab = transformer
        params, tokens, loss = models.transformer(blocks=blocks, d=d, vocab=vocab)
        n = sum(p.size for p in jax.tree.leaves(params))
        leaves = len(jax.tree.leaves(params))
        name = (
            f"optimizer update, transformer {blocks} blocks, d {d}, vocab {vocab} "
            f"({leaves} leaves, {n:,} params)"
        )
        rows += _one_tree(name, params, jax.grad(loss)(params, tokens), reps)
    return rows


def _one_tree(name, params, grads, reps):
    n = sum(p.size for p in jax.tree.leaves(params))
    configs = {
        "optax": optax.adam(1e-3),
        "gradopt.adam": gradopt.adam(1e-3),
        "gradopt.shampoo": gradopt.shampoo(1e-3, block_size=128, precondition_every=EVERY),
        "gradopt.soap": gradopt.soap(1e-3, precondition_every=EVERY),
    }
    rows, runners = [], {}
    for impl, products in {
        "gradopt.shampoo": _shampoo_products(128),
        "gradopt.soap": _soap_products,
    }.items():
        compiled = jax.jit(products).lower(grads).compile()

        def run_products(compiled=compiled):
            return jax.block_until_ready(compiled(grads))

        runners[f"{impl} products"] = run_products
    for impl, tx in configs.items():

        def update(grads, state, params, tx=tx):
            return tx.update(grads, state, params)

        state = tx.init(params)
        seconds, compiled = compile_seconds(update, grads, state, params)
        log(f"case 9: {impl} compiled in {seconds:.2f} s")
        rows.append(_row(name, "compile", impl, summary([seconds])))
        nbytes = _state_bytes(tx, params)
        rows.append(
            {**_row(name, "state bytes", impl, {}), "bytes": nbytes, "bytes_per_param": nbytes / n}
        )
        # count 1 (mod EVERY): a step without refresh; count 0: a refresh step
        steps = {"": 1} if impl in ("optax", "gradopt.adam") else {" non-refresh": 1, " refresh": 0}
        for label, count in steps.items():
            fixed = _at_count(state, count)

            def run(compiled=compiled, fixed=fixed):
                return jax.block_until_ready(compiled(grads, fixed, params))

            runners[impl + label] = run
    for impl, stats in interleaved(runners, reps=reps).items():
        log(f"case 9: {impl}: {stats['median_ms']:.3g} ms")
        base = impl.split(" ")[0]
        which = impl[len(base) :].strip()
        if which == "products":  # the floor of the non-refresh step
            rows.append(_row(f"{name}, matrix products only", "step", base, stats))
            continue
        # Adam has one kind of step: it is the reference of both kinds (ratio vs optax)
        for kind in [which] if which else ["non-refresh", "refresh"]:
            rows.append(_row(f"{name}, {kind} step", "step", base, stats))
    return rows


def _row(name, metric, impl, stats):
    return {"case": "9", "name": name, "metric": metric, "impl": impl, **stats}
