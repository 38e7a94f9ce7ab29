"""The sparse problems of Hogwild! (Niu, Recht, Ré & Wright, 2011), their objective and sparsity.

Problems are sparse "hypergraphs": example ``e`` touches the coordinate set
``e``. The paper's analysis uses ``Omega = max_e |e|``, ``Delta = max_u |{e : u
in e}| / |E|`` and ``rho = max_e |{e' : e' meets e}| / |E|``; see
:func:`sparsity_figures`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class SparseProblem:
    """A sparse problem for :func:`hogwild`.

    ``kind="logistic"``: rows of a CSR matrix (``indptr``, ``indices``,
    ``values``) with labels ``targets`` in {-1, +1}; per example
    ``log(1 + exp(-y w.x)) + reg/2 * sum_{u in e} w_u**2 / d_u``.
    ``kind="completion"``: observed entries ``(rows, cols, targets)`` of a matrix
    of rank ``rank``; parameters ``L`` (n_rows x rank) then ``R`` (n_cols x rank);
    per entry ``(L_u . R_v - z)**2 + reg/2 (|L_u|**2 / d_u + |R_v|**2 / d_v)``.
    ``d_u`` is the number of examples touching ``u``, so the terms add up to
    the full objective with ``reg/2 * |w|**2``.
    """

    kind: str
    n_params: int
    targets: np.ndarray
    reg: float
    indptr: Any = None  # the arrays of the other kind are None
    indices: Any = None
    values: Any = None
    rows: Any = None
    cols: Any = None
    rank: int = 0
    n_rows: int = 0
    n_cols: int = 0

    @property
    def n_examples(self) -> int:
        return int(self.targets.shape[0])


def sparse_logistic_problem(
    n_examples=20000, n_features=20000, nnz=40, *, zipf=0.9, reg=1e-4, seed=0
) -> SparseProblem:
    """A synthetic RCV1-like problem: power-law feature frequencies, unit-norm rows."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_features + 1) ** zipf
    weights /= weights.sum()
    lengths = np.clip(rng.poisson(nnz, n_examples), 1, n_features)
    rows = np.repeat(np.arange(n_examples), lengths)
    cols = rng.choice(n_features, rows.size, p=weights)  # with repeats, removed below
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    keep = np.ones(rows.size, bool)
    keep[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, indices = rows[keep], cols[keep].astype(np.int64)
    lengths = np.bincount(rows, minlength=n_examples)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.random(indptr[-1]) + 0.1
    norms = np.sqrt(np.add.reduceat(values**2, indptr[:-1]))
    values /= np.repeat(norms, lengths)
    w_true = rng.normal(size=n_features) * (rng.random(n_features) < 0.2)
    margin = np.add.reduceat(w_true[indices] * values, indptr[:-1])
    targets = np.where(margin + 0.1 * rng.normal(size=n_examples) > 0, 1.0, -1.0)
    return SparseProblem("logistic", n_features, targets, reg, indptr, indices, values)


def matrix_completion_problem(
    n_rows=500, n_cols=500, rank=3, n_observed=30000, *, reg=1e-2, seed=0
) -> SparseProblem:
    """Observed entries of a random rank-``rank`` matrix plus noise (uniform positions)."""
    rng = np.random.default_rng(seed)
    left = rng.normal(size=(n_rows, rank)) / np.sqrt(rank)
    right = rng.normal(size=(n_cols, rank))
    rows = rng.integers(0, n_rows, n_observed)
    cols = rng.integers(0, n_cols, n_observed)
    targets = np.sum(left[rows] * right[cols], axis=1) + 0.1 * rng.normal(size=n_observed)
    return SparseProblem(
        "completion",
        (n_rows + n_cols) * rank,
        targets,
        reg,
        rows=rows,
        cols=cols,
        rank=rank,
        n_rows=n_rows,
        n_cols=n_cols,
    )


def degrees(problem: SparseProblem) -> np.ndarray:
    if problem.kind == "logistic":
        degree = np.bincount(problem.indices, minlength=problem.n_params)
        return np.maximum(degree, 1).astype(np.float64)
    return np.maximum(
        np.concatenate(
            [
                np.bincount(problem.rows, minlength=problem.n_rows),
                np.bincount(problem.cols, minlength=problem.n_cols),
            ]
        ),
        1,
    ).astype(np.float64)


def initial_params(problem: SparseProblem, seed: int = 0) -> np.ndarray:
    if problem.kind == "logistic":
        return np.zeros(problem.n_params)
    return 0.1 * np.random.default_rng([seed, 99]).normal(size=problem.n_params)


def objective(problem: SparseProblem, w: np.ndarray) -> float:
    """The mean of the per-example terms (the full objective divided by |E|)."""
    n = problem.n_examples
    if problem.kind == "logistic":
        margin = np.add.reduceat(w[problem.indices] * problem.values, problem.indptr[:-1])
        loss = np.logaddexp(0.0, -problem.targets * margin)
    else:
        r = problem.rank
        left = w[: problem.n_rows * r].reshape(problem.n_rows, r)
        right = w[problem.n_rows * r :].reshape(problem.n_cols, r)
        pred = np.sum(left[problem.rows] * right[problem.cols], axis=1)
        loss = (pred - problem.targets) ** 2
    return float(np.mean(loss) + 0.5 * problem.reg * np.dot(w, w) / n)


def sparsity_figures(problem: SparseProblem, *, sample: int = 200, seed: int = 0) -> dict:
    """``Omega``, ``Delta`` and ``rho`` of the problem's hypergraph (Niu et al., 2011).

    For the logistic problem with more than ``sample`` examples, ``rho`` is the
    maximum over ``sample`` of them (those with the most frequent features, and
    random ones): a lower bound.
    For matrix completion, vertices are rows of ``L`` and ``R``; the figures are exact.
    """
    n = problem.n_examples
    if problem.kind == "completion":
        du = np.bincount(problem.rows, minlength=problem.n_rows)
        dv = np.bincount(problem.cols, minlength=problem.n_cols)
        pair = problem.rows * problem.n_cols + problem.cols
        _, where_pair, same = np.unique(pair, return_inverse=True, return_counts=True)
        meets = du[problem.rows] + dv[problem.cols] - same[where_pair]  # entries at (u, v) once
        return {
            "Omega": 2,
            "Delta": float(max(du.max(), dv.max()) / n),
            "rho": float(meets.max() / n),
        }
    degree = np.bincount(problem.indices, minlength=problem.n_params)
    lengths = np.diff(problem.indptr)
    owner = np.repeat(np.arange(n), lengths)
    order = np.argsort(problem.indices, kind="stable")
    starts = np.concatenate([[0], np.cumsum(degree)])
    score = np.add.reduceat(degree[problem.indices], problem.indptr[:-1])
    rng = np.random.default_rng(seed)
    candidates = np.unique(
        np.concatenate([np.argsort(-score)[: sample // 2], rng.integers(0, n, sample // 2)])
    )
    if n <= sample:
        candidates = np.arange(n)
    rho = 0
    for e in candidates:
        feats = problem.indices[problem.indptr[e] : problem.indptr[e + 1]]
        rows = np.concatenate([owner[order[starts[u] : starts[u + 1]]] for u in feats])
        rho = max(rho, np.unique(rows).size)
    return {"Omega": int(lengths.max()), "Delta": float(degree.max() / n), "rho": float(rho / n)}
