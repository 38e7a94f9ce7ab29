"""EASGD and DiLoCo with 4 workers laid out over a 4-device mesh axis vs the same runs
without a mesh."""

import json

import jax
import jax.numpy as jnp
import numpy as np

import gradopt
from gradopt import distributed as dist

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

mesh = jax.make_mesh((4,), ("workers",), axis_types=(jax.sharding.AxisType.Auto,))
rng = np.random.default_rng(0)
a = jnp.asarray(rng.normal(size=(4, 6, 4)), jnp.float32)
y = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)


def loss(p, batch):
    return 0.5 * jnp.mean((batch[0] @ p["w"] - batch[1]) ** 2)


def train(tx, params, batch):
    state = tx.init(params)
    step = dist.worker_step(loss, tx)
    for _ in range(12):
        params, state, _ = jax.block_until_ready(step(params, state, batch))
    return params, state


inner = gradopt.adam(0.05)
start = {"w": jnp.zeros(4, jnp.float32)}
plain, _ = train(dist.easgd(inner, alpha=0.2, tau=3), dist.stack_workers(start, 4), (a, y))
tx = dist.easgd(inner, alpha=0.2, tau=3, mesh=mesh, axis="workers")
params0 = dist.stack_workers(start, 4, mesh, "workers")
batch = jax.device_put(
    (a, y), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("workers"))
)
meshed, state = train(tx, params0, batch)
mu = state.inner[0].mu["w"] if hasattr(state.inner[0], "mu") else jax.tree.leaves(state.inner)[0]
leaf = [x for x in jax.tree.leaves(state.inner) if jnp.ndim(x) == 2][0]
diloco = dist.diloco(inner, sync_every=3)
d_plain, _ = train(diloco, dist.stack_workers(start, 4), (a, y))
d_tx = dist.diloco(inner, sync_every=3, mesh=mesh, axis="workers")
d_meshed, d_state = train(d_tx, dist.stack_workers(start, 4, mesh, "workers"), batch)
d_leaf = [x for x in jax.tree.leaves(d_state.inner) if jnp.ndim(x) == 2][0]
print(
    "RESULT "
    + json.dumps(
        {
            "max_diff": float(jnp.max(jnp.abs(plain["w"] - meshed["w"]))),
            "inner_shards": [list(s.data.shape) for s in leaf.addressable_shards],
            "center_replicated": bool(
                state.center["w"].sharding.is_fully_replicated
                and len(state.center["w"].sharding.device_set) == 4
            ),
            "diloco_max_diff": float(jnp.max(jnp.abs(d_plain["w"] - d_meshed["w"]))),
            "diloco_inner_shards": [list(s.data.shape) for s in d_leaf.addressable_shards],
            "theta_replicated": bool(
                d_state.params["w"].sharding.is_fully_replicated
                and len(d_state.params["w"].sharding.device_set) == 4
            ),
        }
    )
)
