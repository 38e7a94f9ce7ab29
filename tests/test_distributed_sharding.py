"""``init`` builds every state leaf with its parameter's sharding (issue: state on device 0).

Runs ``tests/dist_scripts/init_sharding.py`` with 4 host devices in its own
process: every transform of the registry is initialised on parameters sharded
over a 4-device mesh (along rows, along columns, and a vector), and each state
leaf shaped like a parameter must carry that parameter's sharding.
"""

from tests.dist_helpers import run_script
from tests.registry import REGISTRY


def test_every_registry_transform_keeps_the_sharding_of_its_params():
    result = run_script("init_sharding", n_devices=4, timeout=180)
    assert result["entries"] == len(REGISTRY)
    assert result["leaves_checked"] > len(REGISTRY)  # most transforms keep per-param state
    assert result["bad"] == {}, "state leaves not sharded like their params:\n" + "\n".join(
        f"{name}: {leaf}" for name, leaves in result["bad"].items() for leaf in leaves
    )
