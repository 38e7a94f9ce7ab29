"""``sharded(adam)`` on 8 host devices, on Explicit and Auto mesh axes (issue: ShardingTypeError).

Leaves of every kind of size (a scalar, 1, 3, 8, 9, 13 x 7, and a 16 x 3
leaf sharded over the axis itself), three updates eagerly and ten under jit,
compared bitwise with ``adam`` on the same arrays; and ``data_parallel`` with
``sharded(adam)`` against ``data_parallel`` with ``adam`` (five steps, Explicit).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

import gradopt
from gradopt.distributed import data_parallel, sharded

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

SHAPES = {"s": (), "a": (1,), "b": (3,), "c": (8,), "d": (9,), "e": (13, 7), "f": (16, 3)}


def bitwise(a, b):
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def updates(mesh, mode):
    params = {
        k: jnp.sin(jnp.arange(np.prod(v), dtype=jnp.float32).reshape(v)) for k, v in SHAPES.items()
    }
    params = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
    params["f"] = jax.device_put(params["f"], NamedSharding(mesh, PartitionSpec("data", None)))
    grads = jax.tree.map(lambda x: jnp.cos(3.0 * x), params)
    plain, zero = gradopt.adam(1e-2), sharded(gradopt.adam(1e-2), mesh, "data")
    up, uz = plain.update, zero.update
    if mode == "jit":
        up, uz = jax.jit(up), jax.jit(uz)
    s1, s2, p1, p2 = plain.init(params), zero.init(params), params, params
    for _ in range(3 if mode == "eager" else 10):
        u1, s1 = up(grads, s1, p1)
        u2, s2 = uz(grads, s2, p2)
        p1, p2 = gradopt.apply_updates(p1, u1), gradopt.apply_updates(p2, u2)
    moments = [x for x in jax.tree.leaves(s2) if jnp.ndim(x) == 1 and x.size > 8]
    cut = all(
        len({s.data.shape for s in m.addressable_shards}) == 1
        and m.addressable_shards[0].data.shape[0] == m.shape[0] // 8
        for m in moments
    )
    return bitwise(p1, p2) and bitwise(u1, u2), cut


def paired(mesh):
    def loss(w, b):
        return jnp.mean((jnp.tanh(b["x"] @ w["w"]) @ w["v"] - b["y"]) ** 2)

    p0 = {"w": jnp.full((3, 5), 0.1), "v": jnp.full(5, 0.2)}
    batch = {"x": jnp.ones((16, 3)), "y": jnp.ones(16)}
    out = []
    for tx in (gradopt.adam(0.1), sharded(gradopt.adam(0.1), mesh, "data")):
        dp = data_parallel(loss, tx, mesh, "data")
        w, s = dp.init(p0)
        b = dp.shard_batch(batch)
        for _ in range(5):
            w, s, _ = jax.block_until_ready(dp.step(w, s, b))
        out.append(w)
    return bitwise(*out)


# The Explicit axis (jax.make_mesh's default) in every mode; the Auto axis, whose path
# worked before, under jit.
explicit = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Explicit,))
auto = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
result = {
    "Explicit-eager": updates(explicit, "eager"),
    "Explicit-jit": updates(explicit, "jit"),
    "Explicit-data_parallel": paired(explicit),
    "Auto-jit": updates(auto, "jit"),
}
result["default_axis_type"] = jax.make_mesh((8,), ("data",)).axis_types[0].name
print("RESULT " + json.dumps(result))
