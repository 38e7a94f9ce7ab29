"""The implementations compared, and the step functions each one is timed with.

What gradopt users are told to write (README, "Performance"): build the
optimizer with ``gradopt.packed(...)`` around it, or hold the parameters
packed with ``gradopt.pack_params`` and let the loss read them through
``unpack``, and jit the training step with the parameters and the optimizer
state donated. Every JAX implementation here is jitted the same way, so the
comparison is of the optimizers alone.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

import gradopt

LEARNING_RATE = 1e-3
# torch's OpenMP threads spin between kernels by default and, in one process with XLA's
# thread pool on few cores, take the cores from it (and from each other): measured on 2
# cores, torch's own add_ over 200k floats took 17 ms spinning, 0.05 ms waiting passively.
# Set before torch is imported; a value already in the environment is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ONE_EXPRESSION = "jax, one expression per leaf"


def jax_impls(**adam_kwargs) -> dict:
    """name -> (optimizer, apply_updates) for the JAX implementations."""
    return {
        "optax": (optax.adam(LEARNING_RATE), optax.apply_updates),
        "gradopt": (gradopt.adam(LEARNING_RATE, **adam_kwargs), gradopt.apply_updates),
        "gradopt.packed": (
            gradopt.packed(gradopt.adam(LEARNING_RATE, **adam_kwargs)),
            gradopt.apply_updates,
        ),
    }


PACKED_PARAMS = "gradopt packed params"


class _OneExpressionState(NamedTuple):
    count: jax.Array
    m: object
    v: object


def one_expression_adam(b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    """Adam written by hand as one elementwise expression per leaf: XLA's best case.

    The reference for "one pass per leaf": the bias corrections are scalars
    computed once, and each leaf's ``m``, ``v`` and update come from one
    ``tree.map`` of one function, so nothing stands between XLA and fusing them.
    """

    def init(params):
        def zeros():  # m and v are distinct buffers (both are donated)
            return jax.tree.map(jnp.zeros_like, params)

        return _OneExpressionState(jnp.zeros((), jnp.int32), zeros(), zeros())

    def update(grads, state, params=None):
        del params
        count = state.count + 1
        t = count.astype(jnp.float32)
        c1, c2 = 1.0 - b1**t, 1.0 - b2**t

        def leaf(g, m, v):
            m = b1 * m + (1.0 - b1) * g
            v = b2 * v + (1.0 - b2) * (g * g)
            return -LEARNING_RATE * (m / c1) / (jnp.sqrt(v / c2) + eps), m, v

        out = jax.tree.map(leaf, grads, state.m, state.v)
        outer, inner = jax.tree.structure(grads), jax.tree.structure((0, 0, 0))
        updates, m, v = jax.tree.transpose(outer, inner, out)
        return updates, _OneExpressionState(count, m, v)

    return optax.GradientTransformation(init, update)


def packed_params_tx(**adam_kwargs):
    """The optimizer of the packed-parameters path: plain Adam, run on the packed buffers."""
    return gradopt.adam(LEARNING_RATE, **adam_kwargs)


def packed_params_update_step(tx):
    """``step((flat, unpack), grads, state)`` on parameters held by ``gradopt.pack_params``.

    The gradients arrive packed, as ``jax.grad`` through ``unpack`` returns
    them (the concatenation happens in the model's backward pass, which case 3
    times); the update and its application are one elementwise pass.
    """

    def step(packed, grads, state):
        flat, unpack = packed
        updates, state = tx.update(grads, state, flat)
        return (gradopt.apply_updates(flat, updates), unpack), state

    return step


def packed_params_train_step(tx, loss):
    """``step((flat, unpack), batch, state)``: the loss reads its tree through ``unpack``."""

    def step(packed, batch, state):
        flat, unpack = packed
        grads = jax.grad(lambda f: loss(unpack(f), batch))(flat)
        updates, state = tx.update(grads, state, flat)
        return (gradopt.apply_updates(flat, updates), unpack), state

    return step


def update_step(tx, apply):
    """``step(params, grads, state)``: one optimizer update applied to the parameters."""

    def step(params, grads, state):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return step


def train_step(tx, apply, loss):
    """``step(params, batch, state)``: forward, backward, update and apply."""

    def step(params, batch, state):
        grads = jax.grad(loss)(params, batch)
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return step


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_runners(shapes: list[tuple[int, ...]], seed: int = 0) -> dict:
    """torch.optim.Adam for-loop, foreach and fused, each on its own tensors.

    The gradients are fixed tensors set once; each runner performs
    ``optimizer.step()``, which reads them and updates parameters and moments
    in place, as a torch training loop does after ``backward()``.
    """
    import torch

    torch.manual_seed(seed)
    runners = {}
    for name, kwargs in (
        ("torch for-loop", {"foreach": False}),
        ("torch foreach", {"foreach": True}),
        ("torch fused", {"fused": True}),
    ):
        params = [torch.nn.Parameter(torch.randn(s) * 0.01) for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape) * 0.01
        opt = torch.optim.Adam(params, lr=LEARNING_RATE, **kwargs)
        runners[name] = opt.step
    return runners


COPY_JAX = "copy: jax x + 1.0, donated"
COPY_TORCH = "copy: torch add_(1.0)"
COPY_BYTES_PER_ENTRY = 8  # read and write one float32
ADAM_BYTES_PER_PARAM = 28  # at least: read p, g, m, v; write p, m, v (float32)


def copy_runners(num_entries: int) -> dict:
    """The machine's copy bandwidth: an in-place ``x + 1`` over ``num_entries`` float32.

    JAX: jitted with the input donated, so XLA writes into the buffer it reads.
    torch (where importable): ``add_``, its in-place kernel.
    """
    holder = [jnp.zeros((num_entries,), jnp.float32)]
    add_one = jax.jit(lambda x: x + 1.0, donate_argnums=0)

    def jax_copy():
        holder[0] = add_one(holder[0])
        holder[0].block_until_ready()

    runners = {COPY_JAX: jax_copy}
    if torch_available():
        import torch

        tensor = torch.zeros(num_entries)
        runners[COPY_TORCH] = lambda: tensor.add_(1.0)
    return runners
