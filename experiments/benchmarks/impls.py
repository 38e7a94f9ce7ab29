"""The implementations compared, and the step functions each one is timed with.

What gradopt users are told to write (README, "Performance"): build the
optimizer with ``gradopt.packed(...)`` around it, or hold the parameters
packed with ``gradopt.pack_params`` and let the loss read them through
``unpack``, and jit the training step with the parameters and the optimizer
state donated. Every JAX implementation here is jitted the same way, so the
comparison is of the optimizers alone.
"""

from __future__ import annotations

import jax
import optax

import gradopt

LEARNING_RATE = 1e-3


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
