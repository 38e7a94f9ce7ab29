"""Parameter trees and losses for the benchmark: flat trees, a deep narrow MLP, a transformer."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def flat_tree(num_leaves: int, leaf_size: int, seed: int = 0) -> tuple[dict, dict]:
    """``num_leaves`` float32 vectors of ``leaf_size`` entries, and gradients like them."""
    key = jax.random.PRNGKey(seed)
    params, grads = {}, {}
    for i in range(num_leaves):
        kp, kg = jax.random.split(jax.random.fold_in(key, i))
        params[f"w{i:05d}"] = 0.01 * jax.random.normal(kp, (leaf_size,), jnp.float32)
        grads[f"w{i:05d}"] = 0.01 * jax.random.normal(kg, (leaf_size,), jnp.float32)
    return params, grads


def mlp(depth: int = 300, width: int = 64, batch: int = 32, seed: int = 0):
    """A deep narrow tanh MLP (``2 * depth`` leaves), a regression batch and its loss."""
    key = jax.random.PRNGKey(seed)
    params = [
        {
            "w": jax.random.normal(jax.random.fold_in(key, i), (width, width)) / jnp.sqrt(width),
            "b": jnp.zeros((width,), jnp.float32),
        }
        for i in range(depth)
    ]
    kx, ky = jax.random.split(jax.random.fold_in(key, 99_999))
    data = (jax.random.normal(kx, (batch, width)), jax.random.normal(ky, (batch, width)))

    def loss(params, data):
        x, y = data
        h = x
        for layer in params:
            h = jnp.tanh(h @ layer["w"] + layer["b"])
        return jnp.mean(jnp.square(h - y))

    return params, data, loss


def _layer_norm(x, g, b):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * g + b


def transformer(
    blocks: int = 12, d: int = 128, vocab: int = 512, seq: int = 32, batch: int = 4, seed: int = 0
):
    """A transformer-shaped tree (embedding, attention and MLP blocks, layer norms), its loss."""
    key = jax.random.PRNGKey(seed)
    counter = iter(range(10_000))

    def dense(shape):
        return jax.random.normal(jax.random.fold_in(key, next(counter)), shape) / jnp.sqrt(shape[0])

    params = {"embed": dense((vocab, d)), "blocks": [], "ln_f": (jnp.ones(d), jnp.zeros(d))}
    for _ in range(blocks):
        params["blocks"].append(
            {
                "ln1": (jnp.ones(d), jnp.zeros(d)),
                "wq": dense((d, d)),
                "wk": dense((d, d)),
                "wv": dense((d, d)),
                "wo": dense((d, d)),
                "ln2": (jnp.ones(d), jnp.zeros(d)),
                "w1": dense((d, 4 * d)),
                "b1": jnp.zeros(4 * d),
                "w2": dense((4 * d, d)),
                "b2": jnp.zeros(d),
            }
        )
    tokens = jax.random.randint(jax.random.fold_in(key, 99_999), (batch, seq + 1), 0, vocab)
    heads = 4
    mask = jnp.tril(jnp.ones((seq, seq), bool))

    def loss(params, tokens):
        x = params["embed"][tokens[:, :-1]]
        for blk in params["blocks"]:
            h = _layer_norm(x, *blk["ln1"])
            q, k, v = (
                (h @ blk[w]).reshape(batch, seq, heads, d // heads) for w in ("wq", "wk", "wv")
            )
            att = jnp.einsum("bqhc,bkhc->bhqk", q, k) / jnp.sqrt(jnp.float32(d // heads))
            att = jax.nn.softmax(jnp.where(mask, att, -1e9), axis=-1)
            x = x + jnp.einsum("bhqk,bkhc->bqhc", att, v).reshape(batch, seq, d) @ blk["wo"]
            h = _layer_norm(x, *blk["ln2"])
            x = x + jax.nn.gelu(h @ blk["w1"] + blk["b1"]) @ blk["w2"] + blk["b2"]
        logits = _layer_norm(x, *params["ln_f"]) @ params["embed"].T
        logp = jax.nn.log_softmax(logits)
        target = jax.nn.one_hot(tokens[:, 1:], vocab)
        return -jnp.mean(jnp.sum(logp * target, axis=-1))

    return params, tokens, loss
