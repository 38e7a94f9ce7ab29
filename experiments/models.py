"""Small models and a compiled epoch loop shared by the classifier studies."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

import gradopt


def init_mlp(key, sizes, *, scale: float | None = None):
    """Dense layers ``sizes[0] -> ... -> sizes[-1]``: weights N(0, s²), biases 0.

    ``s`` is ``scale`` when given, else ``1 / sqrt(fan_in)``.
    """
    params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:], strict=True):
        s = scale if scale is not None else fan_in**-0.5
        params.append(
            {
                "w": s * jax.random.normal(k, (fan_in, fan_out), jnp.float32),
                "b": jnp.zeros((fan_out,), jnp.float32),
            }
        )
    return params


def mlp_apply(params, x, activation=jax.nn.relu):
    """Logits of a dense network (the activation between layers, none after the last)."""
    for i, layer in enumerate(params):
        x = x @ layer["w"] + layer["b"][None, :]
        if i < len(params) - 1:
            x = activation(x)
    return x


def cross_entropy(logits, y, mask=None):
    """Mean softmax cross-entropy (over the examples where ``mask`` is True)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    losses = -jnp.take_along_axis(logp, y[:, None], axis=1)[:, 0]
    if mask is None:
        return jnp.mean(losses)
    weights = mask.astype(losses.dtype)
    return jnp.sum(weights * losses) / jnp.maximum(jnp.sum(weights), 1.0)


def accuracy(logits, y) -> float:
    return float(jnp.mean((jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)))


def epoch_fn(loss_fn, tx, n: int, batch_size, *, order="shuffle", scores=None, num_bands=None):
    """A jitted ``(params, state, key, epoch, x, y[, scores]) -> (params, state, batch_losses)``.

    One epoch of ``tx`` over ``n`` examples in batches from
    :func:`gradopt.data.epoch_indices` (the short last batch padded and masked),
    run in one ``jax.lax.scan``. ``loss_fn(params, x, y, mask)`` is the batch loss.
    The curriculum ``scores`` may also be passed at call time (as an argument
    rather than a compile-time constant, which XLA would try to sort while
    compiling).
    """
    return jax.jit(
        functools.partial(
            _epoch,
            loss_fn=loss_fn,
            tx=tx,
            n=n,
            batch_size=batch_size,
            order=order,
            scores=scores,
            num_bands=num_bands,
        )
    )


def _epoch(
    params,
    state,
    key,
    epoch,
    x,
    y,
    scores_arg=None,
    *,
    loss_fn,
    tx,
    n,
    batch_size,
    order,
    scores,
    num_bands,
):
    scores = scores if scores_arg is None else scores_arg
    ix = gradopt.data.epoch_indices(
        n, batch_size, order=order, key=key, epoch=epoch, scores=scores, num_bands=num_bands
    )
    value_and_grad = jax.value_and_grad(loss_fn)

    def step(carry, batch):
        params, state = carry
        idx, mask = batch
        value, grads = value_and_grad(params, x[idx], y[idx], mask)
        updates, state = tx.update(grads, state, params, value=value)
        return (gradopt.apply_updates(params, updates), state), value

    (params, state), losses = jax.lax.scan(step, (params, state), (ix.indices, ix.mask))
    return params, state, losses
