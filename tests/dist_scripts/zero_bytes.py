"""ZeRO-1 (``gradopt.distributed.sharded``) on N of this process's host devices.

Usage: zero_bytes.py [N ...] (default 1 2 4 8; at most the host device count).

Prints per-device optimizer-state bytes (from the arrays' addressable shards)
with and without ``sharded``, whether ``sharded(adam)``'s updates equal adam's
(eagerly, bitwise; under jit), and the same on packed parameters
(``gradopt.pack_params``). Used by tests/test_distributed_sharded.py and by
experiments/parallel.py.
"""

import json
import sys
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import gradopt
from gradopt.distributed import sharded

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

SHAPES = {"w1": (257, 129), "b1": (129,), "w2": (129, 10), "b2": (10,), "s": ()}


def state_bytes_per_device(state):
    per = defaultdict(int)
    for leaf in jax.tree.leaves(state):
        for shard in leaf.addressable_shards:
            per[shard.device.id] += shard.data.nbytes
    return per


def bitwise(a, b):
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def close(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


rng = np.random.default_rng(0)
host = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
grads_host = [
    {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()} for _ in range(3)
]
out = {"n_params": int(sum(np.size(v) for v in host.values())), "runs": {}}
COUNTS = [int(a) for a in sys.argv[1:]] or [1, 2, 4, 8]
for n in COUNTS:
    mesh = Mesh(np.array(jax.devices()[:n]), ("data",))
    rep = NamedSharding(mesh, PartitionSpec())
    params = jax.device_put(host, rep)
    tx = gradopt.adam(1e-2)
    ztx = sharded(tx, mesh, "data")
    plain_state, zero_state = tx.init(params), ztx.init(params)
    plain_bytes, zero_bytes = (
        state_bytes_per_device(plain_state),
        state_bytes_per_device(zero_state),
    )
    # Updates under jit, blocking on every step (eager op-by-op collectives on
    # simulated devices can deadlock).
    step_plain, step_zero = jax.jit(tx.update), jax.jit(ztx.update)
    equal, diff = True, 0.0
    s1, s2 = plain_state, zero_state
    for g in grads_host:
        g = jax.device_put(g, rep)
        u1, s1 = jax.block_until_ready(step_plain(g, s1, params))
        u2, s2 = jax.block_until_ready(step_zero(g, s2, params))
        equal &= bitwise(u1, u2)
        diff = max(diff, close(u1, u2))
    # pack_params: sharded state on the packed buffers.
    flat, unpack = gradopt.pack_params(host)
    flat = jax.device_put(flat, rep)
    ones = jax.tree.map(jnp.ones_like, flat)
    pz = jax.block_until_ready(ztx.init(flat))
    pu, pz = jax.block_until_ready(step_zero(ones, pz, flat))
    pp = tx.init(flat)
    pu_plain, _ = jax.block_until_ready(step_plain(ones, pp, flat))
    out["runs"][n] = {
        "plain_bytes": [plain_bytes[d.id] for d in mesh.devices.flat],
        "sharded_bytes": [zero_bytes[d.id] for d in mesh.devices.flat],
        "bitwise": bool(equal),
        "max_abs_diff": diff,
        "state_sharded_after_update": all(
            len(x.sharding.device_set) == n for x in jax.tree.leaves(s2) if jnp.ndim(x) == 1
        ),
        "packed_bitwise": bitwise(pu, pu_plain),
        "packed_sharded_bytes": max(state_bytes_per_device(pz).values()),
        "packed_plain_bytes": max(state_bytes_per_device(pp).values()),
    }
print("RESULT " + json.dumps(out))
