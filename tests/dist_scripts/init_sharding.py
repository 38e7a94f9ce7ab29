"""Every registry transform's ``init`` on sharded params: state leaves keep the sharding.

Run by tests/test_distributed_sharding.py with 4 host devices. Prints, for each
entry, the state leaves whose sharding differs from their parameter's.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tests.registry import REGISTRY

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

mesh = Mesh(np.array(jax.devices()), ("x",))
n = len(jax.devices())
specs = {"w": PartitionSpec("x", None), "b": PartitionSpec("x"), "v": PartitionSpec(None, "x")}
shapes = {"w": (2 * n, 3), "b": (n,), "v": (5, n)}
params = {
    k: jax.device_put(
        jnp.arange(np.prod(s), dtype=jnp.float32).reshape(s) / 7.0, NamedSharding(mesh, specs[k])
    )
    for k, s in shapes.items()
}
by_shape = {shapes[k]: params[k].sharding for k in shapes}

report = {}
checked = 0
for entry in REGISTRY:
    if not entry.sharded_init:
        continue
    # matrices-only entries (torch's Muon) take the 2-D leaves alone
    own = {k: v for k, v in params.items() if v.ndim == 2} if entry.matrices_only else params
    state = entry.make().init(own)
    bad = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        shape = tuple(jnp.shape(leaf))
        if shape not in by_shape or not isinstance(leaf, jax.Array):
            continue
        checked += 1
        want = by_shape[shape]
        if not leaf.sharding.is_equivalent_to(want, len(shape)):
            bad.append(f"{jax.tree_util.keystr(path)}: {leaf.sharding} (want {want.spec})")
    if bad:
        report[entry.name] = bad
print("RESULT " + json.dumps({"entries": len(REGISTRY), "leaves_checked": checked, "bad": report}))
