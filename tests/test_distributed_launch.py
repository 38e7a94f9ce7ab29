"""The launcher when a process raises after ``initialize()`` (no ``--timeout``).

``tests/dist_scripts/raise_rank.py`` runs data parallelism over 2 processes;
one of them raises before the first all-reduce or between two, while the other
goes on to its next all-reduce. The launcher must report the raising process
(its index, traceback and exit code) within seconds and stop the other; the
test bounds the whole run (the launcher gets SIGTERM past it and the test fails).
"""

import time

import pytest

from tests.dist_helpers import run_launcher


@pytest.mark.parametrize(("when", "rank"), [("before", 1), ("between", 0)])
def test_a_raising_process_is_reported_at_once_and_the_others_stopped(when, rank):
    proc = run_launcher(
        "raise_rank", when, str(rank), processes=2, devices=1, timeout=120, launcher_timeout=False
    )
    ended = time.time()
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 1, out[-3000:] + err[-3000:]
    assert f"launch: process {rank} of 2 exited with code 1; stopped the others" in err, err
    assert "Traceback (most recent call last)" in err  # its traceback, repeated
    assert f"RuntimeError: boom in process {rank}" in err
    assert "second step done" not in out
    if when == "between":
        assert out.count("first step done") == 2
    raised = [line for line in out.splitlines() if line.startswith(f"[process {rank}] RAISING ")]
    assert len(raised) == 1, out[-3000:]
    # Reported within seconds of the raise: before the fix the run hung (or, with
    # --timeout, ended at the timeout; a raise before any collective blamed the
    # healthy process after gloo's 30 s timeout).
    assert ended - float(raised[0].split()[-1]) < 20, err


def test_of_processes_found_failed_together_the_first_to_fail_is_named():
    """The others fail a moment after the raising one (gloo: connection closed)."""
    import collections
    import threading

    from gradopt.distributed.launch import _first_failure

    tails = [
        collections.deque(["gradopt.distributed: process 0 raised JaxRuntimeError at 105.5; x"]),
        collections.deque(["Traceback", "gradopt.distributed: process 1 raised E at 105.4; x"]),
        collections.deque(["no stamp: killed by a signal"]),
    ]
    threads = [threading.Thread(target=lambda: None) for _ in tails]
    for thread in threads:
        thread.start()
    ended = {0: 106.0, 1: 105.9}
    assert _first_failure([(0, 1), (1, 1)], tails, threads, ended) == (1, 1)
    assert _first_failure([(0, 1), (2, -11)], tails, threads, {**ended, 2: 105.45}) == (2, -11)
    assert _first_failure([(0, 1), (2, -11)], tails, threads, {**ended, 2: 105.6}) == (0, 1)
