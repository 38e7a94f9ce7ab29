"""ZeRO-1 sharded optimizer state (``gradopt.distributed.sharded``).

The mesh run (tests/dist_scripts/zero_bytes.py, 8 host devices, own process)
measures per-device state bytes from the arrays' addressable shards; the leaves
(257 x 129, 129, 129 x 10, 10 and a scalar) are not multiples of 8.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from gradopt.distributed import sharded
from tests.dist_helpers import run_script


@pytest.fixture(scope="module")
def run8():
    return run_script("zero_bytes", "8", n_devices=8)["runs"]["8"]


def test_each_device_holds_about_one_eighth_of_the_state(run8):
    plain, zero = run8["plain_bytes"], run8["sharded_bytes"]
    assert len(plain) == len(zero) == 8
    assert min(plain) > 270_000  # replicated: every device holds the whole Adam state
    # 1/8 of it, plus padding (< 8 entries per leaf and moment) and the step counter.
    for got in zero:
        assert got <= max(plain) / 8 + 2 * 5 * 8 * 4 + 16, zero
    assert run8["state_sharded_after_update"]


def test_updates_equal_the_unsharded_optimizer_bitwise(run8):
    assert run8["bitwise"], run8["max_abs_diff"]


def test_composes_with_pack_params(run8):
    assert run8["packed_bitwise"]
    assert run8["packed_sharded_bytes"] <= run8["packed_plain_bytes"] / 8 + 64


def test_wraps_optax_transforms_on_one_device():
    mesh = jax.make_mesh((1,), ("data",))
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(5)}
    grads = jax.tree.map(lambda p: jnp.sin(p) + 0.5, params)
    # (optax.adam does not run under the strict dtype promotion of conftest.py.)
    for tx in (optax.sgd(0.1, momentum=0.9), gradopt.rmsprop(0.01), gradopt.adam(0.1)):
        ztx = sharded(tx, mesh, "data")
        s_plain, s_zero = tx.init(params), ztx.init(params)
        for _ in range(3):
            u_plain, s_plain = tx.update(grads, s_plain, params)
            u_zero, s_zero = ztx.update(grads, s_zero, params)
            for a, b in zip(jax.tree.leaves(u_plain), jax.tree.leaves(u_zero), strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_explicit_and_auto_axes_every_leaf_size_bitwise_adam():
    """jax.make_mesh makes Explicit axes: sharded() used to raise ShardingTypeError there."""
    result = run_script("sharded_axes", n_devices=8, timeout=240)
    assert result.pop("default_axis_type") == "Explicit"
    for case, outcome in result.items():
        if case.endswith("data_parallel"):
            assert outcome is True, case  # data_parallel(sharded(adam)) == data_parallel(adam)
        else:
            assert outcome == [True, True], case  # bitwise adam; each moment cut in 8 pieces
