"""Second-order methods against first-order ones at equal budgets: does the slide hold?

The first lecture deck says that second-order methods use a better local
model, "however for a fixed computational budget, the complexity of these
methods reduces the total number of iterations, and the eventual optimization
is worse". This study measures it on three problems, with two budgets: wall
clock, and gradient-equivalent evaluations (GE) counted from what each method
actually evaluated, in units of one gradient on a 128-example mini-batch:

* a gradient on m examples: m / 128; a loss value alone (forward pass): half
  of that; a Hessian-vector product, or a ``jvp`` plus a ``vjp``: two
  gradients; the full Hessian of d parameters: d Hessian-vector products (2 d);
* line-search trials, CG iterations and Sophia's refreshes are read from the
  optimizers' states, not assumed.

1. Convex: multinomial logistic regression on the digits (650 parameters,
   ridge 1e-3), full batch: GD, Adam, Newton, Gauss-Newton and
   Levenberg-Marquardt (on the residuals ``r_i = sqrt(2 loss_i / n)``),
   L-BFGS and Hessian-free.
2. Non-convex: a 64-32-10 tanh MLP on the digits with 128-example mini-batches:
   SGD with momentum, Adam, L-BFGS (full batch and mini-batch), Hessian-free,
   Sophia, Shampoo and SOAP, each run to the same GE budget. Hyperparameters
   are the methods' defaults or one reasonable value, not tuned per method.
3. The valley of the first deck (Hessian eigenvalues 1 and 39): Newton next to
   GD and momentum.

Run: ``python -m experiments.second_order [--quick]``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import gradopt
from experiments import common, valley
from experiments.datasets import load_digits
from experiments.models import cross_entropy, init_mlp, mlp_apply

NAME = "second_order"
BATCH = 128
RIDGE = 1e-3


# ----------------------------------------------------------------------------
# problems


def logistic_loss(params, x, y):
    logits = x @ params["w"] + params["b"][None, :]
    return cross_entropy(logits, y) + 0.5 * RIDGE * jnp.sum(params["w"] ** 2)


def logistic_residuals(params, x, y):
    """``0.5 |r|^2`` is the logistic loss: ``r_i = sqrt(2 loss_i / n)``, and the ridge."""
    logits = x @ params["w"] + params["b"][None, :]
    logp = jax.nn.log_softmax(logits, axis=-1)
    per_example = -jnp.take_along_axis(logp, y[:, None], axis=1)[:, 0]
    data = jnp.sqrt(2.0 * per_example / x.shape[0])
    return jnp.concatenate([data, jnp.sqrt(RIDGE) * jnp.ravel(params["w"])])


def mlp_loss(params, x, y):
    return cross_entropy(mlp_apply(params, x, activation=jnp.tanh), y)


def size_of(params) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


# ----------------------------------------------------------------------------
# one method, run to a budget


def _cg(state) -> int:
    """CG iterations so far (the state counts them all)."""
    return int(state[0].cg_steps)


def _trials(state) -> int:
    """Line-search trials so far."""
    return int(state[2].info.total_trials)


def run_method(spec, loss_fn, params, data, batches, budget, max_steps, eval_fn):
    """Run one method until its GE count reaches ``budget`` (or ``max_steps``).

    ``spec`` is ``(kind, optimizer, full_batch)``. Returns the curve as rows
    ``(step, ge, seconds, train loss)``; seconds exclude the first (compiling) call.
    """
    kind, tx, full_batch = spec
    n = data[0].shape[0]
    d = size_of(params)
    state = tx.init(params)
    value_and_grad = jax.value_and_grad(loss_fn)

    @jax.jit
    def step(params, state, x, y, value, grad):
        extra = {}
        if kind in ("lbfgs", "hf", "newton", "sophia"):
            extra = {"value_fn": loss_fn, "x": x, "y": y}
        if kind in ("gn", "lm"):
            extra = {"residual_fn": logistic_residuals, "x": x, "y": y}
        if kind in ("lbfgs", "hf"):
            extra.update(value=value, grad=grad)
        updates, state = tx.update(grad, state, params, **extra)
        return gradopt.apply_updates(params, updates), state

    vg = jax.jit(value_and_grad)
    curve = [(0, 0.0, 0.0, float(eval_fn(params)))]
    ge, seconds, reuse, done_cg, done_trials = 0.0, 0.0, None, 0, 0
    for t in range(max_steps):
        x, y = jax.block_until_ready(data if full_batch else batches(t))
        units = x.shape[0] / BATCH
        start = time.perf_counter()
        if reuse is None:
            value, grad = vg(params, x, y)
            ge += units
        else:
            value, grad = reuse
        params, state = step(params, state, x, y, value, grad)
        jax.block_until_ready(params)
        if t > 0:
            seconds += time.perf_counter() - start
        if kind == "lbfgs":
            trials, done_trials = _trials(state) - done_trials, _trials(state)
            ge += units * trials
            if full_batch:  # the search's last point is the next step's: reuse its gradient
                reuse = (state[2].value, state[2].grad)
        elif kind == "newton":
            ge += units * 2 * d
        elif kind in ("gn", "lm", "hf"):
            cg, done_cg = _cg(state) - done_cg, _cg(state)
            extra = {"gn": 0.5, "lm": 1.0, "hf": 1.5}[kind]  # linearisation, trial value
            ge += units * (extra + 2 * cg)
        elif kind == "sophia":
            ge += units * (2.0 if t % 10 == 0 else 0.0)  # the HVP of refresh steps
        curve.append((t + 1, ge, seconds, float(eval_fn(params))))
        if ge >= budget:
            break
    del n
    return curve


# ----------------------------------------------------------------------------
# the three problems


def convex(settings, digits):
    x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)
    params = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
    full = x.shape[0] / BATCH
    d = size_of(params)
    # enough for a few Newton steps (each 1 + 2 d full-batch gradients); the cheap
    # methods stop at their iteration cap first
    budget = settings.pick(8, 3, 2) * (1 + 2 * d) * full
    steps = settings.pick(1000, 200, 4)
    methods = {
        "GD (lr 1)": ("grad", gradopt.sgd(1.0), True),
        "Adam (lr 0.05)": ("grad", gradopt.adam(0.05), True),
        "Newton": ("newton", gradopt.newton(damping=1e-6), True),
        "Gauss-Newton": ("gn", gradopt.gauss_newton(damping=1e-4, max_cg_steps=20), True),
        "Levenberg-Marquardt": ("lm", gradopt.levenberg_marquardt(1e-2, max_cg_steps=20), True),
        "L-BFGS": ("lbfgs", gradopt.lbfgs(), True),
        "Hessian-free": ("hf", gradopt.hessian_free(damping=1e-2, max_cg_steps=20), True),
    }
    evaluate = jax.jit(lambda p: logistic_loss(p, x, y))
    curves = {}
    for name, spec in methods.items():
        common.log(NAME, f"convex: {name}")
        curves[name] = run_method(
            spec, logistic_loss, params, (x, y), None, budget, steps, evaluate
        )
    return curves


def nonconvex(settings, digits):
    x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)
    n = x.shape[0]
    params = init_mlp(jax.random.PRNGKey(settings.seed), [64, 32, 10])
    budget = settings.pick(3000, 300, 12)
    rng = np.random.default_rng(settings.seed)
    order = np.concatenate([rng.permutation(n) for _ in range(400)])

    def batches(t):
        idx = order[t * BATCH : (t + 1) * BATCH]
        return x[idx], y[idx]

    methods = {
        "SGD+momentum": ("grad", gradopt.sgd(0.1, momentum=0.9), False),
        "Adam": ("grad", gradopt.adam(3e-3), False),
        "L-BFGS (full batch)": ("lbfgs", gradopt.lbfgs(), True),
        "L-BFGS (mini-batch)": ("lbfgs", gradopt.lbfgs(), False),
        "Hessian-free": ("hf", gradopt.hessian_free(damping=1.0, max_cg_steps=10), False),
        "Sophia": ("sophia", gradopt.sophia(3e-3, gamma=0.05, weight_decay=0.0), False),
        "Shampoo": ("grad", gradopt.shampoo(3e-3, block_size=64, precondition_every=10), False),
        "SOAP": ("grad", gradopt.soap(3e-3, precondition_every=10), False),
    }
    evaluate = jax.jit(lambda p: mlp_loss(p, x, y))
    curves = {}
    for name, spec in methods.items():
        common.log(NAME, f"non-convex: {name}")
        curves[name] = run_method(
            spec, mlp_loss, params, (x, y), batches, budget, int(budget) + 1, evaluate
        )
    return curves, budget


def on_valley(steps):
    start = jnp.asarray(valley.START, jnp.float32)
    runs = {
        "GD lr=0.04": common.trajectory(gradopt.sgd(0.04), valley.loss_fn, start, steps),
        "momentum 0.5, lr=0.04": common.trajectory(
            gradopt.sgd(0.04, momentum=0.5), valley.loss_fn, start, steps
        ),
    }
    newton = gradopt.newton()
    points, state = [np.asarray(start)], newton.init(start)
    w = start
    for _ in range(steps):
        updates, state = newton.update(
            jax.grad(valley.loss_fn)(w), state, w, value_fn=valley.loss_fn
        )
        w = gradopt.apply_updates(w, updates)
        points.append(np.asarray(w))
    points = np.stack(points)
    runs["Newton"] = (points, np.asarray([float(valley.loss_fn(p)) for p in points]))
    return runs


# ----------------------------------------------------------------------------
# numbers, figures, findings


def rows_of(problem, curves, test_eval=None) -> list[dict]:
    best = min(min(r[3] for r in c) for c in curves.values())
    rows = []
    for name, curve in curves.items():
        last = curve[-1]
        within = [r for r in curve if r[3] - best <= 1e-3 * max(abs(best), 1.0)]
        rows.append(
            {
                "problem": problem,
                "method": name,
                "steps": last[0],
                "ge": round(last[1], 2),
                "seconds": round(last[2], 4),
                "final_loss": last[3],
                "steps_to_best": within[0][0] if within else None,
                "ge_to_best": round(within[0][1], 2) if within else None,
            }
        )
    return rows


def loss_at(curve, ge):
    """The training loss of the last step within a GE budget."""
    inside = [r for r in curve if r[1] <= ge + 1e-9]
    return inside[-1][3] if inside else curve[0][3]


def draw(settings, convex_curves, mlp_curves, valley_runs) -> list[str]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    for row, (title, curves) in enumerate((("convex", convex_curves), ("MLP", mlp_curves))):
        best = min(min(r[3] for r in c) for c in curves.values())
        for i, (name, curve) in enumerate(curves.items()):
            c = np.asarray(curve)
            gap = np.maximum(c[:, 3] - best, 1e-7) if row == 0 else c[:, 3]
            for ax, col in zip(axes[row], (0, 1, 2), strict=True):
                ax.semilogy(c[:, col], gap, ".-" if len(c) < 30 else "-", color=f"C{i}",
                            label=name, ms=3)  # fmt: skip
        ylabel = "loss - best loss" if row == 0 else "training loss"
        for ax, xlabel in zip(axes[row], ("iteration", "gradient-equivalents", "seconds"),
                              strict=True):  # fmt: skip
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(f"{title}: against {xlabel}", fontsize=9)
        axes[row][0].legend(fontsize=7)
        if row == 0:
            axes[row][0].set_xscale("symlog", linthresh=10)
            axes[row][1].set_xscale("symlog", linthresh=100)
    fig.suptitle("Second-order and first-order methods at equal budgets (digits)")
    main_figure = common.save_figure(fig, settings, "second_order")

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    valley._contour(axes[0], "Newton (black) reaches the minimum in one step")
    styles = {"GD lr=0.04": "C3", "momentum 0.5, lr=0.04": "C0", "Newton": "k"}
    for name, (points, losses) in valley_runs.items():
        axes[0].plot(points[:, 0], points[:, 1], ".-", color=styles[name], ms=3, lw=0.8)
        axes[1].semilogy(np.maximum(losses, 1e-12), color=styles[name], label=name)
    axes[1].set_xlabel("step")
    axes[1].set_title("loss (floored at 1e-12)", fontsize=9)
    axes[1].legend(fontsize=8)
    return [main_figure, common.save_figure(fig, settings, "second_order_valley")]


def loss_at_time(curve, seconds):
    inside = [r for r in curve if r[2] <= seconds + 1e-12]
    return inside[-1][3] if inside else curve[0][3]


def findings_of(convex_rows, convex_curves, mlp_rows, mlp_curves, budget, valley_runs, d_convex):
    first_order = ("GD (lr 1)", "Adam (lr 0.05)")
    conv = {r["method"]: r for r in convex_rows}
    findings = []
    reach = ", ".join(
        f"{r['method']} {r['steps_to_best']} it / {r['ge_to_best']} GE"
        for r in convex_rows
        if r["steps_to_best"] is not None
    )
    findings.append(
        f"Convex ({d_convex} parameters): iterations and GE to reach the best loss within "
        f"1e-3: {reach or 'none'}; not reached: "
        + (", ".join(r["method"] for r in convex_rows if r["steps_to_best"] is None) or "none")
        + "."
    )
    k = conv["Newton"]["steps"]
    at_k = {m: c[min(k, len(c) - 1)][3] for m, c in convex_curves.items()}
    findings.append(
        f"Convex, per iteration: loss after {k} iterations: "
        + ", ".join(f"{m} {common.fmt(v)}" for m, v in sorted(at_k.items(), key=lambda i: i[1]))
        + "."
    )
    best_first = min(conv[m]["final_loss"] for m in first_order)
    better = [r["method"] for r in convex_rows
              if r["method"] not in first_order and r["final_loss"] < best_first]  # fmt: skip
    findings.append(
        "Convex, at the budget: second-order methods ending below the best first-order loss "
        f"({common.fmt(best_first)}): {', '.join(better) or 'none'}. A Newton step costs "
        f"{2 * d_convex} full-batch gradients ({conv['Newton']['ge_to_best'] or '—'} GE to the "
        "best loss)."
    )
    adam = min(loss_at(mlp_curves[m], budget) for m in ("Adam", "SGD+momentum"))
    ranked = sorted(mlp_rows, key=lambda r: loss_at(mlp_curves[r["method"]], budget))
    findings.append(
        f"MLP at {budget:g} GE: training loss "
        + ", ".join(
            f"{r['method']} {common.fmt(loss_at(mlp_curves[r['method']], budget))}" for r in ranked
        )  # fmt: skip
        + "."
    )
    others = [r["method"] for r in ranked if r["method"] not in ("Adam", "SGD+momentum")]
    worse = [m for m in others if loss_at(mlp_curves[m], budget) > adam]
    beats = [m for m in others if loss_at(mlp_curves[m], budget) < adam]
    findings.append(
        "The slide's claim (worse than the best first-order method, "
        f"{common.fmt(adam)}, at a fixed budget of gradient evaluations) holds for: "
        f"{', '.join(worse) or 'none'}; it fails for: {', '.join(beats) or 'none'}."
    )
    secs = {r["method"]: r["seconds"] for r in mlp_rows}
    findings.append(
        "MLP wall clock to the budget (s, compile excluded): "
        + ", ".join(f"{m} {s:.2f}" for m, s in secs.items())
        + "."
    )
    t_adam = secs["Adam"]
    findings.append(
        f"MLP at Adam's wall clock ({t_adam:.2f} s; a method that spent its GE budget "
        "sooner shows its final loss): training loss "
        + ", ".join(f"{m} {common.fmt(loss_at_time(c, t_adam))}" for m, c in mlp_curves.items())
        + "."
    )
    newton_losses = valley_runs["Newton"][1]
    findings.append(
        f"Valley: Newton's loss after one step {common.fmt(newton_losses[1])} (start "
        f"{common.fmt(newton_losses[0])}); GD lr=0.04 after the same number of steps "
        f"{common.fmt(valley_runs['GD lr=0.04'][1][-1])}."
    )
    return findings, worse, beats


def run(settings: common.Settings) -> common.Result:
    digits = load_digits(seed=settings.seed)
    if settings.mode == "smoke":
        digits = digits.subset(256, 64)
    convex_curves = convex(settings, digits)
    mlp_curves, budget = nonconvex(settings, digits)
    valley_runs = on_valley(settings.pick(40, 20, 5))
    convex_rows = rows_of("convex", convex_curves)
    mlp_rows = rows_of("mlp", mlp_curves)
    data = [
        str(common.write_csv(settings.out / "second_order.csv", convex_rows + mlp_rows)),
        str(common.write_json(
            settings.out / "curves.json",
            {"convex": convex_curves, "mlp": mlp_curves, "mlp_budget_ge": budget},
        )),
    ]  # fmt: skip
    figures = draw(settings, convex_curves, mlp_curves, valley_runs)
    findings, worse, beats = findings_of(
        convex_rows, convex_curves, mlp_rows, mlp_curves, budget, valley_runs, 650
    )
    headline = (
        f"MLP at equal gradient budget, worse than the best first-order method: "
        f"{', '.join(worse) or 'none'}; better: {', '.join(beats) or 'none'}; Newton solves "
        "the valley in 1 step"
    )

    def cells(r):
        best_steps = r["steps_to_best"] if r["steps_to_best"] is not None else "—"
        best_ge = r["ge_to_best"] if r["ge_to_best"] is not None else "—"
        final = common.fmt(r["final_loss"])
        return [r["problem"], r["method"], r["steps"], r["ge"], r["seconds"], final, best_steps,
                best_ge]  # fmt: skip

    table = common.markdown_table(
        [
            "problem",
            "method",
            "steps",
            "GE",
            "seconds",
            "final loss",
            "steps to best",
            "GE to best",
        ],
        [cells(r) for r in convex_rows + mlp_rows],
    )
    common.write_summary(
        settings,
        "Second-order methods at equal budgets",
        intro=__doc__.split("Run:")[0],
        study_settings={"batch": BATCH, "mlp_budget_ge": budget, "ridge": RIDGE},
        findings=findings,
        tables=[("All runs", table)],
        figures=figures,
        data=data,
    )
    return common.Result(NAME, "Second-order methods", findings, headline, figures, data)


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
