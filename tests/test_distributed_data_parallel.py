"""Data parallelism over a mesh axis (``gradopt.distributed.data_parallel``).

Each mesh test runs a script of ``tests/dist_scripts/`` in its own process with
the host device count set before JAX starts, bounded by a timeout.
"""

import time

import pytest

from tests.dist_helpers import launcher_results, run_launcher, run_script

DEVICE_COUNTS = (1, 2, 4, 8)


@pytest.fixture(scope="module")
def runs():
    return {n: run_script("data_parallel", n_devices=n) for n in DEVICE_COUNTS}


def test_deterministic_adam_is_bitwise_equal_for_1_2_4_8_devices(runs):
    reference = runs[1]["final"]
    for n in DEVICE_COUNTS:
        assert runs[n]["devices"] == n
        assert runs[n]["final"] == reference, f"{n} devices differ from 1 device"
    first, last = runs[1]["losses"]
    assert last < 0.2 * first  # the 100 steps did train


def test_plain_step_is_the_mean_gradient_not_n_times_it(runs):
    # Inside shard_map the gradient of a replicated parameter is already summed over
    # the axis; averaging it again would make this relative error N - 1.
    for n in DEVICE_COUNTS:
        for leaf, error in runs[n]["plain_rel_error"].items():
            assert error < 1e-5, (n, leaf, error)


@pytest.fixture(scope="module")
def bad_input():
    return run_script("bad_input", n_devices=2)


@pytest.mark.parametrize(
    ("case", "kind", "names"),
    [
        ("missing_axis", "ValueError", ["`axis`", "'batch'", "['data']"]),
        ("not_a_mesh", "TypeError", ["`mesh`"]),
        ("not_a_transform", "TypeError", ["`tx`"]),
        ("batch_not_divisible", "ValueError", ["`batch`", "(5, 3)", "2"]),
        ("chunks_not_multiple", "ValueError", ["`chunks`", "3"]),
    ],
)
def test_bad_input_names_the_argument(bad_input, case, kind, names):
    got_kind, message = bad_input[case]
    assert got_kind == kind, (case, got_kind, message)
    for name in names:
        assert name in message, (case, message)


@pytest.mark.parametrize(
    ("case", "kind", "names"),
    [
        ("tau_zero", "ValueError", ["`tau`", "0"]),
        ("alpha_negative", "ValueError", ["`alpha`", "-0.1"]),
        ("p_alpha_above_one", "ValueError", ["`alpha`", "p = 2", "1.2"]),
        ("easgd_not_a_transform", "TypeError", ["`tx`", "'sgd'"]),
        ("easgd_missing_axis", "ValueError", ["`axis`", "'workers'"]),
        ("eamsgd_tau_zero", "ValueError", ["`tau`"]),
    ],
)
def test_easgd_bad_input_names_the_argument(bad_input, case, kind, names):
    got_kind, message = bad_input[case]
    assert got_kind == kind, (case, got_kind, message)
    for name in names:
        assert name in message, (case, message)


@pytest.mark.parametrize(
    ("case", "kind", "names"),
    [
        ("sharded_missing_axis", "ValueError", ["`axis`", "'model'"]),
        ("sharded_not_a_transform", "TypeError", ["`tx`", "None"]),
    ],
)
def test_sharded_bad_input_names_the_argument(bad_input, case, kind, names):
    got_kind, message = bad_input[case]
    assert got_kind == kind, (case, got_kind, message)
    for name in names:
        assert name in message, (case, message)


def test_two_processes_of_two_devices_equal_one_process_of_four_bitwise(runs):
    proc = run_launcher("data_parallel", processes=2, devices=2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = launcher_results(proc.stdout)
    assert sorted(results) == [0, 1], proc.stdout[-3000:]
    for rank, result in results.items():
        assert result["devices"] == 4 and result["process"] == rank
        assert result["final"] == runs[4]["final"], f"process {rank} differs from 1 x 4 devices"


def test_launcher_fails_cleanly_when_a_process_dies():
    start = time.monotonic()
    proc = run_launcher("fail_rank", processes=2, devices=1, timeout=90)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    assert "[process 1] RuntimeError: boom in process 1" in proc.stdout
    assert "[process 0] process 0 sleeping" in proc.stdout
    assert "process 1 of 2 exited with code 1; stopped the others" in proc.stderr
    assert "boom in process 1" in proc.stderr  # the failing process's last lines repeated
    assert elapsed < 60  # process 0 (sleeping for 120 s) was stopped
