"""Hogwild!: spawned processes on shared memory. Every run is bounded and its processes stopped.

Throughput is measured by the study (python -m experiments.async_sgd), never asserted here.
"""

import itertools

import numpy as np
import pytest

from gradopt import distributed as gd
from gradopt.distributed._hogwild import objective

SMALL = dict(n_examples=600, n_features=300, nnz=8, seed=1)


def test_two_workers_reach_the_serial_objective_and_report_staleness():
    problem = gd.sparse_logistic_problem(**SMALL)
    serial = gd.serial_sgd(problem, n_updates=6000, learning_rate=0.5)
    run = gd.hogwild(problem, n_workers=2, n_updates=6000, learning_rate=0.5, timeout=120)
    start = objective(problem, np.zeros(problem.n_params))
    assert run.objective < 0.8 * start
    assert abs(run.objective - serial.objective) <= 0.05 * serial.objective
    assert run.telemetry.pushes == [3000, 3000]
    assert sum(run.telemetry.delays.values()) == 6000
    assert serial.telemetry.delays == {0: 6000}


@pytest.mark.parametrize(("how", "match"), [("raise", "injected failure"), ("exit", "died")])
def test_a_failing_worker_fails_the_run_naming_it(how, match):
    problem = gd.sparse_logistic_problem(**SMALL)
    with pytest.raises(gd.WorkerFailedError, match=match) as info:
        gd.hogwild(
            problem,
            n_workers=1,
            n_updates=2000,
            learning_rate=0.5,
            timeout=120,
            _inject_failure=(0, how),
        )
    assert info.value.worker == 0


def brute_force_figures(sets, n_vertices):
    edges = [frozenset(s) for s in sets]
    omega = max(len(e) for e in edges)
    delta = max(sum(v in e for e in edges) for v in range(n_vertices)) / len(edges)
    rho = max(sum(bool(e & f) for f in edges) for e in edges) / len(edges)
    return omega, delta, rho


def test_sparsity_figures_match_a_brute_force_count():
    problem = gd.sparse_logistic_problem(n_examples=60, n_features=40, nnz=3, seed=2)
    sets = [problem.indices[a:b] for a, b in itertools.pairwise(problem.indptr)]
    figures = gd.sparsity_figures(problem)
    assert (figures["Omega"], figures["Delta"], figures["rho"]) == pytest.approx(
        brute_force_figures(sets, problem.n_params)
    )
    mc = gd.matrix_completion_problem(20, 15, 2, 70, seed=3)
    sets = [{u, mc.n_rows + v} for u, v in zip(mc.rows, mc.cols, strict=True)]
    figures = gd.sparsity_figures(mc)
    assert (figures["Omega"], figures["Delta"], figures["rho"]) == pytest.approx(
        brute_force_figures(sets, mc.n_rows + mc.n_cols)
    )


def test_matrix_completion_objective_decreases_serially():
    mc = gd.matrix_completion_problem(40, 40, 2, 800, seed=0)
    run = gd.serial_sgd(mc, n_updates=8000, learning_rate=0.1)
    assert run.objective < 0.5 * objective(mc, gd._hogwild.initial_params(mc))


def test_bad_arguments():
    problem = gd.sparse_logistic_problem(**SMALL)
    with pytest.raises(ValueError, match="n_workers"):
        gd.hogwild(problem, n_workers=0, n_updates=10, learning_rate=0.1)
    with pytest.raises(ValueError, match="n_updates"):
        gd.hogwild(problem, n_workers=4, n_updates=2, learning_rate=0.1)
    with pytest.raises(TypeError, match="SparseProblem"):
        gd.hogwild("rcv1", n_workers=1, n_updates=10, learning_rate=0.1)
