"""Hogwild!: the compiled loop against a NumPy transcription, threads, failures, no Numba.

Throughput is measured by the study (python -m experiments.hogwild), never asserted here.
"""

import importlib.util
import itertools
import math
import subprocess
import sys
import threading

import numpy as np
import pytest

from gradopt import distributed as gd
from gradopt.distributed import _hogwild
from gradopt.distributed._hogwild import initial_params, objective

needs_numba = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="needs the gradopt[distributed] extra"
)

SMALL = dict(n_examples=600, n_features=300, nnz=8, seed=1)


def numpy_sgd(problem, picks, learning_rate, decay, seed):
    """Niu et al.'s update, one worker, float64: w_v -= step * (grad f_e(w_e))_v for v in e."""
    n = problem.n_examples
    w = initial_params(problem, seed)
    y, reg = problem.targets, problem.reg
    if problem.kind == "logistic":
        degree = np.maximum(np.bincount(problem.indices, minlength=problem.n_params), 1)
    else:
        r = problem.rank
        du = np.maximum(np.bincount(problem.rows, minlength=problem.n_rows), 1)
        dv = np.maximum(np.bincount(problem.cols, minlength=problem.n_cols), 1)
    for k, e in enumerate(picks):
        step = learning_rate * decay ** (k // n)
        if problem.kind == "logistic":
            idx = problem.indices[problem.indptr[e] : problem.indptr[e + 1]]
            x = problem.values[problem.indptr[e] : problem.indptr[e + 1]]
            read = w[idx].copy()
            margin = 0.0
            for j in range(len(idx)):
                margin += read[j] * x[j]
            coef = -y[e] / (1.0 + math.exp(y[e] * margin))  # d/dm log(1 + exp(-y m))
            for j, u in enumerate(idx):
                w[u] -= step * (coef * x[j] + reg * read[j] / float(degree[u]))
        else:
            u, v = problem.rows[e], problem.cols[e]
            lo, ro = u * r, (problem.n_rows + v) * r
            left, right = w[lo : lo + r].copy(), w[ro : ro + r].copy()
            res = 0.0
            for i in range(r):
                res += left[i] * right[i]
            res -= y[e]
            for i in range(r):
                w[lo + i] -= step * (2.0 * res * right[i] + reg * left[i] / float(du[u]))
                w[ro + i] -= step * (2.0 * res * left[i] + reg * right[i] / float(dv[v]))
    return w


@needs_numba
@pytest.mark.parametrize("kind", ["logistic", "completion"])
def test_one_worker_is_serial_sgd_and_the_numpy_transcription(kind):
    if kind == "logistic":
        problem, n, lr = gd.sparse_logistic_problem(**SMALL), 3000, 0.5
    else:
        problem, n, lr = gd.matrix_completion_problem(30, 20, 2, 500, seed=3), 3000, 0.1
    # the documented example order of worker 0; 3000 updates cross 5-6 epochs of the decay
    picks = np.random.default_rng([7, 0]).integers(0, problem.n_examples, n)
    expected = numpy_sgd(problem, picks, lr, 0.8, seed=7)
    serial = gd.serial_sgd(problem, n_updates=n, learning_rate=lr, decay=0.8, seed=7)
    one = gd.hogwild(problem, n_workers=1, n_updates=n, learning_rate=lr, decay=0.8, seed=7)
    np.testing.assert_array_equal(one.params, serial.params)
    np.testing.assert_allclose(serial.params, expected, rtol=1e-12, atol=1e-15)
    assert serial.objective == pytest.approx(objective(problem, expected), rel=1e-12)
    assert serial.telemetry.pushes == [n]
    assert serial.telemetry.delays == {0: math.ceil(n / 64)}  # every 64th update sampled


@needs_numba
def test_two_workers_reach_serial_sgd_within_one_percent_and_report_staleness():
    problem = gd.sparse_logistic_problem(**SMALL)
    args = dict(n_updates=24000, learning_rate=0.5, seed=0)
    serial = gd.serial_sgd(problem, **args, sample_delays_every=1)
    run = gd.hogwild(problem, n_workers=2, timeout=120, sample_delays_every=1, **args)
    assert serial.objective < 0.6 * objective(problem, np.zeros(problem.n_params))
    assert run.objective == pytest.approx(serial.objective, rel=0.01)
    assert run.telemetry.pushes == [12000, 12000]
    assert sum(run.telemetry.delays.values()) == 24000  # every update measured
    assert serial.telemetry.delays == {0: 24000}
    assert len(run.cpu_seconds) == 2 and run.seconds > 0


def _no_worker_threads_left():
    return not [t for t in threading.enumerate() if t.name.startswith("hogwild-worker")]


@needs_numba
@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_failing_worker_fails_the_run_naming_it_and_stops_the_others(n_workers):
    problem = gd.sparse_logistic_problem(**SMALL)
    failing = n_workers - 1
    n = 3_000_000 * n_workers  # the healthy worker is stopped long before its end
    with pytest.raises(gd.WorkerFailedError, match="injected failure") as info:
        gd.hogwild(
            problem,
            n_workers=n_workers,
            n_updates=n,
            learning_rate=0.5,
            timeout=120,
            _inject_failure=(failing, 10),
        )
    assert info.value.worker == failing
    assert _no_worker_threads_left()
    pushes = info.value.result.telemetry.pushes
    assert pushes[failing] == 10
    assert all(p < 3_000_000 for p in pushes)  # each loop stopped on the flag


@needs_numba
def test_a_timeout_stops_the_workers_and_raises():
    problem = gd.sparse_logistic_problem(**SMALL)
    with pytest.raises(TimeoutError, match="timeout=0.001"):
        gd.hogwild(problem, n_workers=2, n_updates=4_000_000, learning_rate=0.5, timeout=0.001)
    assert _no_worker_threads_left()


def test_without_numba_gradopt_imports_and_hogwild_says_which_extra_to_install(monkeypatch):
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import gradopt, gradopt.distributed as gd\n"
        "p = gd.sparse_logistic_problem(n_examples=20, n_features=10, nnz=2)\n"
        "try:\n"
        "    gd.serial_sgd(p, n_updates=10, learning_rate=0.1)\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ImportError:" in out.stdout and "gradopt[distributed]" in out.stdout
    # the same path in this process
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.delitem(sys.modules, "gradopt.distributed._hogwild_kernel", raising=False)
    monkeypatch.delattr(gd, "_hogwild_kernel", raising=False)
    monkeypatch.setattr(_hogwild, "_KERNEL", None)
    with pytest.raises(ImportError, match=r"pip install 'gradopt\[distributed\]'"):
        gd.hogwild(gd.sparse_logistic_problem(**SMALL), n_workers=1, n_updates=10, learning_rate=1)


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


@needs_numba
def test_matrix_completion_objective_decreases_serially():
    mc = gd.matrix_completion_problem(40, 40, 2, 800, seed=0)
    run = gd.serial_sgd(mc, n_updates=8000, learning_rate=0.1)
    assert run.objective < 0.5 * objective(mc, initial_params(mc))


def test_bad_arguments():
    problem = gd.sparse_logistic_problem(**SMALL)
    with pytest.raises(ValueError, match="n_workers"):
        gd.hogwild(problem, n_workers=0, n_updates=10, learning_rate=0.1)
    with pytest.raises(ValueError, match="n_updates"):
        gd.hogwild(problem, n_workers=4, n_updates=2, learning_rate=0.1)
    with pytest.raises(TypeError, match="SparseProblem"):
        gd.hogwild("rcv1", n_workers=1, n_updates=10, learning_rate=0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        gd.serial_sgd(problem, n_updates=10, learning_rate=0.0)
    with pytest.raises(ValueError, match="decay"):
        gd.serial_sgd(problem, n_updates=10, learning_rate=0.1, decay=1.5)
    with pytest.raises(ValueError, match="sample_delays_every"):
        gd.hogwild(problem, n_workers=1, n_updates=10, learning_rate=0.1, sample_delays_every=0)
    with pytest.raises(ValueError, match="timeout"):
        gd.hogwild(problem, n_workers=1, n_updates=10, learning_rate=0.1, timeout=-1)
