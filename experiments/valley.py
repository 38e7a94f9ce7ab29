"""Step size and curvature: gradient descent on an anisotropic quadratic valley.

f(x, y) = (lambda_1 x^2 + lambda_2 y^2) / 2 with Hessian eigenvalues
lambda_1 = 1 and lambda_2 = 39. Gradient descent multiplies the y coordinate by
(1 - lr lambda_2) every step, so it converges only for lr < 2 / lambda_2 = 5.13e-2:
1e-2 and 2e-2 creep along the flat x direction, 4e-2 and 5e-2 zig-zag across
the valley, and 5.3e-2 diverges. Heavy-ball momentum (gamma = 0 and 0.5) runs at
the same learning rates (with gamma, the stability limit moves to
lr < 2 (1 + gamma) / lambda_2), and Adam (b1 = 0.9, b2 = 0.999, eps = 1e-8,
lr = 0.1) runs from the same start.

Run: ``python -m experiments.valley [--quick]``.
"""

from __future__ import annotations

import functools

import numpy as np

from experiments import common

NAME = "valley"
LAMBDAS = (1.0, 39.0)
LEARNING_RATES = (1e-2, 2e-2, 4e-2, 5e-2, 5.3e-2)
GAMMAS = (0.0, 0.5)
START = (-9.0, 1.5)
ADAM = {"learning_rate": 0.1, "b1": 0.9, "b2": 0.999, "eps": 1e-8}


def loss_fn(p):
    return 0.5 * (LAMBDAS[0] * p[0] ** 2 + LAMBDAS[1] * p[1] ** 2)


def classify(points: np.ndarray, losses: np.ndarray) -> str:
    """'diverges', 'oscillates' or 'slow', from the numbers of one run.

    Diverges: the final loss is not finite or above the starting loss.
    Oscillates: the steep coordinate y changes sign on most steps.
    Slow: neither (a monotone creep along the valley floor).
    """
    if not np.isfinite(losses[-1]) or losses[-1] > losses[0]:
        return "diverges"
    y = points[:, 1]
    flips = np.mean(np.sign(y[1:]) * np.sign(y[:-1]) < 0)
    return "oscillates" if flips > 0.5 else "slow"


def steps_to(losses: np.ndarray, fraction: float = 1e-3) -> int | None:
    """First step at which the loss is below ``fraction`` times the starting loss."""
    below = np.nonzero(losses <= fraction * losses[0])[0]
    return int(below[0]) if below.size else None


def _sgd(lr, gamma=0.0):
    import gradopt

    if gamma == 0.0:
        return gradopt.sgd(lr)
    return gradopt.sgd(lr, momentum=gamma)


def simulate(steps: int):
    """Every run: GD and momentum over the learning rates (one vmapped program each), Adam."""
    import gradopt

    runs = {}
    for kind, gamma in (("gd", 0.0), ("momentum", 0.0), ("momentum", 0.5)):
        points, losses = common.sweep_trajectories(
            functools.partial(_sgd, gamma=gamma), loss_fn, START, steps, LEARNING_RATES
        )
        for i, lr in enumerate(LEARNING_RATES):
            runs[(kind, lr, gamma)] = (points[i], losses[i])
    adam = common.trajectory(gradopt.adam(**ADAM), loss_fn, START, steps)
    return runs, adam


def tabulate(runs, adam) -> list[dict]:
    """One row per run: its regime, final loss and steps to 1e-3 x the start loss."""
    rows = []
    for (kind, lr, gamma), (points, losses) in runs.items():
        rows.append(
            {
                "method": kind,
                "learning_rate": lr,
                "gamma": gamma,
                "lr_times_lambda_max": lr * LAMBDAS[1],
                "regime": classify(points, losses),
                "final_loss": float(losses[-1]),
                "steps_to_1e-3": steps_to(losses),
            }
        )
    adam_points, adam_losses = adam
    rows.append(
        {
            "method": "adam",
            "learning_rate": ADAM["learning_rate"],
            "gamma": None,
            "lr_times_lambda_max": None,
            "regime": classify(adam_points, adam_losses),
            "final_loss": float(adam_losses[-1]),
            "steps_to_1e-3": steps_to(adam_losses),
        }
    )
    return rows


def write_numbers(settings, rows, runs, adam) -> list[str]:
    data = [str(common.write_csv(settings.out / "valley.csv", rows))]
    adam_points, adam_losses = adam
    common.write_json(
        settings.out / "trajectories.json",
        {
            f"{k}_lr{lr}_gamma{g}": {"points": p, "losses": loss}
            for (k, lr, g), (p, loss) in runs.items()
        }
        | {"adam": {"points": adam_points, "losses": adam_losses}},
    )
    data.append(str(settings.out / "trajectories.json"))
    return data


def _contour(ax, title):
    """The valley's level sets and its minimum, on the figures' window."""
    xs = np.linspace(-10, 10, 200)
    ys = np.linspace(-3, 3, 200)
    gx, gy = np.meshgrid(xs, ys)
    gz = 0.5 * (LAMBDAS[0] * gx**2 + LAMBDAS[1] * gy**2)
    ax.contour(gx, gy, gz, levels=np.geomspace(0.05, gz.max(), 14), colors="0.75", linewidths=0.7)
    ax.plot(0, 0, "k*", ms=8)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_title(title, fontsize=9)


def draw_gd(settings, gd, runs) -> str:
    """Gradient descent's path at each learning rate, and its loss curves."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, row in zip(axes.flat, gd, strict=False):
        points, _ = runs[("gd", row["learning_rate"], 0.0)]
        _contour(ax, f"GD lr={row['learning_rate']:g}: {row['regime']}")
        ax.plot(points[:, 0], points[:, 1], ".-", color="C3", ms=3, lw=0.8)
    ax = axes.flat[-1]
    for i, row in enumerate(gd):
        _, losses = runs[("gd", row["learning_rate"], 0.0)]
        ax.semilogy(
            np.clip(losses, 1e-12, 1e6), color=f"C{i}", label=f"lr={row['learning_rate']:g}"
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss (clipped at 1e6)", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(
        f"Gradient descent on f = (x² + {LAMBDAS[1]:g} y²)/2; 2/λ_max = {2 / LAMBDAS[1]:.4g}"
    )
    return common.save_figure(fig, settings, "valley_gd")


def draw_momentum_adam(settings, runs, adam_points) -> str:
    """Momentum's loss curves, momentum at the edge of stability, and Adam's path."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for gamma, ls in zip(GAMMAS, ("--", "-"), strict=False):
        for i, lr in enumerate(LEARNING_RATES):
            _, losses = runs[("momentum", lr, gamma)]
            axes[0].semilogy(
                np.clip(losses, 1e-12, 1e6), ls, color=f"C{i}", label=f"γ={gamma:g}, lr={lr:g}"
            )
    axes[0].set_title("momentum: loss (dashed γ=0, solid γ=0.5)", fontsize=9)
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=6, ncol=2)
    _contour(axes[1], "lr=5.3e-2: γ=0 (red) vs γ=0.5 (blue)")
    for gamma, color in zip(GAMMAS, ("C3", "C0"), strict=False):
        points, _ = runs[("momentum", 5.3e-2, gamma)]
        axes[1].plot(points[:, 0], points[:, 1], ".-", color=color, ms=3, lw=0.8)
    _contour(axes[2], "Adam (0.9, 0.999, 1e-8), lr=0.1")
    axes[2].plot(adam_points[:, 0], adam_points[:, 1], ".-", color="C2", ms=3, lw=0.8)
    return common.save_figure(fig, settings, "valley_momentum_adam")


def _rescued(by) -> list[float]:
    """Learning rates where momentum 0.5 converges and plain momentum (γ=0) diverges."""
    return [
        lr
        for lr in LEARNING_RATES
        if by[("momentum", lr, 0.0)]["regime"] == "diverges"
        and by[("momentum", lr, 0.5)]["regime"] != "diverges"
    ]


def findings_of(rows, gd, runs, adam_points, steps) -> list[str]:
    """The findings, computed from the runs."""
    limit = 2 / LAMBDAS[1]
    by = {(r["method"], r["learning_rate"], r["gamma"]): r for r in rows}
    findings = [
        f"Hessian eigenvalues {LAMBDAS[0]:g} and {LAMBDAS[1]:g}: gradient descent is stable "
        f"for lr < 2/λ_max = {limit:.4g} (between 5e-2 and 5.3e-2)."
    ]
    for regime in ("slow", "oscillates", "diverges"):
        lrs = [f"{r['learning_rate']:g}" for r in gd if r["regime"] == regime]
        if lrs:
            findings.append(f"GD {regime}: lr = {', '.join(lrs)}.")
    for r in gd:
        reach = r["steps_to_1e-3"]
        findings.append(
            f"GD lr={r['learning_rate']:g}: final loss {common.fmt(r['final_loss'])} after "
            f"{steps} steps"
            + (f", loss below 1e-3 x start at step {reach}" if reach is not None else "")
            + "."
        )
    for lr in _rescued(by):
        findings.append(
            f"Momentum γ=0.5 converges at lr={lr:g} where γ=0 diverges (final loss "
            f"{common.fmt(by[('momentum', lr, 0.5)]['final_loss'])}); the heavy-ball limit is "
            f"lr < 2(1+γ)/λ_max = {2 * 1.5 / LAMBDAS[1]:.3g}."
        )
    faster = [
        lr
        for lr in LEARNING_RATES
        if by[("momentum", lr, 0.5)]["final_loss"] < by[("momentum", lr, 0.0)]["final_loss"]
    ]
    findings.append(
        "γ=0.5 ends lower than γ=0 at lr = "
        + (", ".join(f"{lr:g}" for lr in faster) or "none")
        + "."
    )
    adam_row = rows[-1]
    findings.append(
        f"Adam lr=0.1: final loss {common.fmt(adam_row['final_loss'])}, final point "
        f"({adam_points[-1, 0]:.3g}, {adam_points[-1, 1]:.3g}); over the first 10 steps it "
        f"moves x by {np.mean(np.abs(np.diff(adam_points[:11, 0]))):.3g} per step (GD at "
        f"lr=0.05: {np.mean(np.abs(np.diff(runs[('gd', 5e-2, 0.0)][0][:11, 0]))):.3g}), "
        "a step set by the learning rate rather than by the small curvature along x."
    )
    return findings


def headline_of(rows, gd) -> str:
    by = {(r["method"], r["learning_rate"], r["gamma"]): r for r in rows}
    diverging = ", ".join(f"{r['learning_rate']:g}" for r in gd if r["regime"] == "diverges")
    return (
        f"GD diverges at lr = {diverging or 'none'} (2/λ_max = {2 / LAMBDAS[1]:.4g}); momentum "
        f"0.5 rescues lr = {', '.join(f'{lr:g}' for lr in _rescued(by)) or 'none'}; Adam final "
        f"loss {common.fmt(rows[-1]['final_loss'])}"
    )


def table_of(rows) -> str:
    return common.markdown_table(
        ["method", "lr", "γ", "lr·λ_max", "regime", "final loss", "steps to 1e-3×"],
        [
            [
                r["method"],
                f"{r['learning_rate']:g}",
                "" if r["gamma"] is None else f"{r['gamma']:g}",
                "" if r["lr_times_lambda_max"] is None else f"{r['lr_times_lambda_max']:.3g}",
                r["regime"],
                common.fmt(r["final_loss"]),
                r["steps_to_1e-3"] if r["steps_to_1e-3"] is not None else "—",
            ]
            for r in rows
        ],
    )


def run(settings: common.Settings) -> common.Result:
    steps = settings.pick(300, 150, 40)
    runs, adam = simulate(steps)
    rows = tabulate(runs, adam)
    data = write_numbers(settings, rows, runs, adam)
    gd = [r for r in rows if r["method"] == "gd"]
    figures = [draw_gd(settings, gd, runs), draw_momentum_adam(settings, runs, adam[0])]
    findings = findings_of(rows, gd, runs, adam[0], steps)
    common.write_summary(
        settings,
        "Step size and curvature on a quadratic valley",
        intro=__doc__.split("Run:")[0],
        study_settings={"steps": steps, "start": START, "lambdas": LAMBDAS, "adam": ADAM},
        findings=findings,
        tables=[("All runs", table_of(rows))],
        figures=figures,
        data=data,
    )
    return common.Result(
        NAME, "Step size and curvature", findings, headline_of(rows, gd), figures, data
    )


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
