"""The optimizer gallery: nine optimizers on Rosenbrock, Beale and a saddle point.

SGD, momentum (0.9), Nesterov (0.9), Adagrad, Adadelta, RMSprop, Adam, AdaMax and
Nadam, each with its paper defaults apart from the learning rate, run from the
same start on

* Rosenbrock f = (1 - x)² + 100 (y - x²)², a long curved valley, minimum (1, 1);
* Beale f = (1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)², minimum (3, 0.5);
* the saddle z = x² - y², started just off the ridge (y = 1e-3).

On Rosenbrock and Beale every optimizer gets the best learning rate of a grid
(10^-4 ... 1 in half decades, all of them run in one vmapped program per
optimizer; "best" = lowest mean log-loss over the run, which rewards fast and
steady progress), so the picture compares methods, not
tuning. On the saddle every optimizer uses the same learning rate (Adadelta,
which has no learning rate in its paper, uses 1), and the summary reports the
step at which each one escapes (|y| > 1). An animated GIF shows the saddle.

Run: ``python -m experiments.gallery [--quick]``.
"""

from __future__ import annotations

import functools

import numpy as np

from experiments import common

NAME = "gallery"
GRID = tuple(float(v) for v in np.logspace(-4, 0, 9))
SADDLE_LR = 0.05
SADDLE_START = (1.0, 1e-3)
LABELS = {
    "sgd": "SGD",
    "momentum": "Momentum",
    "nesterov": "Nesterov",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamax": "AdaMax",
    "nadam": "Nadam",
}


def rosenbrock(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def beale(p):
    x, y = p[0], p[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def saddle(p):
    return p[0] ** 2 - p[1] ** 2


SURFACES = {
    "rosenbrock": {
        "fn": rosenbrock,
        "start": (-1.5, 2.0),
        "minimum": (1.0, 1.0),
        "box": ((-2.0, 2.0), (-1.0, 3.0)),
    },
    "beale": {
        "fn": beale,
        "start": (1.0, 1.5),
        "minimum": (3.0, 0.5),
        "box": ((-0.5, 4.0), (-1.5, 2.0)),
    },
}


def escape_step(points: np.ndarray, threshold: float = 1.0) -> int | None:
    above = np.nonzero(np.abs(points[:, 1]) > threshold)[0]
    return int(above[0]) if above.size else None


def best_on_surfaces(names, grid, steps):
    """Each optimizer on each surface over the grid; the best run (lowest mean log loss) each.

    Returns ``best[(surface, name)] = (lr, points, losses)`` and the CSV rows.
    """
    best, rows = {}, []
    jobs = [(s, n) for s in SURFACES for n in names]
    for surface, name in common.progress(jobs, desc="gallery"):
        spec = SURFACES[surface]
        points, losses = common.sweep_trajectories(
            functools.partial(common.optimizer, name), spec["fn"], spec["start"], steps, grid
        )
        final = np.where(np.isfinite(losses[:, -1]), losses[:, -1], np.inf)
        score = np.mean(np.log10(np.maximum(losses, 1e-30)), axis=1)
        score = np.where(np.isfinite(score) & np.isfinite(final), score, np.inf)
        i = int(np.argmin(score))
        distance = float(np.linalg.norm(points[i, -1] - np.asarray(spec["minimum"])))
        best[(surface, name)] = (grid[i], points[i], losses[i])
        for lr, f in zip(grid, final, strict=True):
            rows.append({"surface": surface, "optimizer": name, "learning_rate": lr, "final": f})
        for row, sc in zip(rows[-len(grid) :], score, strict=True):
            row["mean_log10_loss"] = sc
        rows[-len(grid) + i]["best"] = True
        rows[-len(grid) + i]["distance_to_minimum"] = distance
    return best, rows


def saddle_all(names, saddle_steps):
    """Each optimizer from just off the saddle's ridge; ``{name: (lr, points, losses)}``, rows."""
    saddle_runs, rows = {}, []
    for name in names:
        lr = 1.0 if name == "adadelta" else SADDLE_LR
        points, losses = common.sweep_trajectories(
            functools.partial(common.optimizer, name), saddle, SADDLE_START, saddle_steps, [lr]
        )
        saddle_runs[name] = (lr, points[0], losses[0])
        rows.append(
            {
                "surface": "saddle",
                "optimizer": name,
                "learning_rate": lr,
                "final": float(losses[0, -1]),
                "escape_step": escape_step(points[0]),
            }
        )
    return saddle_runs, rows


def _draw_surface(ax, surface, names, best, steps):
    spec = SURFACES[surface]
    (x0, x1), (y0, y1) = spec["box"]
    gx, gy = np.meshgrid(np.linspace(x0, x1, 250), np.linspace(y0, y1, 250))
    gz = np.asarray(spec["fn"](np.stack([gx, gy])))
    ax.contour(gx, gy, np.log10(gz + 1e-3), levels=25, colors="0.8", linewidths=0.6)
    ax.plot(*spec["minimum"], "k*", ms=10)
    for i, name in enumerate(names):
        lr, points, losses = best[(surface, name)]
        ax.plot(
            points[:, 0],
            points[:, 1],
            "-",
            color=f"C{i}",
            lw=1.2,
            label=f"{LABELS[name]} (lr {lr:.0e}, f={common.fmt(losses[-1], 2)})",
        )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(f"{surface.capitalize()}, {steps} steps, best lr of the grid", fontsize=10)
    ax.legend(fontsize=6.5, loc="lower right" if surface == "rosenbrock" else "upper right")


def _draw_saddle(ax, names, saddle_runs, saddle_steps):
    gx, gy = np.meshgrid(np.linspace(-1.5, 1.5, 200), np.linspace(-1.5, 1.5, 200))
    ax.contour(gx, gy, gx**2 - gy**2, levels=21, colors="0.8", linewidths=0.6)
    for i, name in enumerate(names):
        lr, points, _ = saddle_runs[name]
        step = escape_step(points)
        ax.plot(
            points[:, 0],
            points[:, 1],
            "-",
            color=f"C{i}",
            lw=1.2,
            label=f"{LABELS[name]} (escapes at {step if step is not None else '—'})",
        )
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    ax.set_title(f"Saddle x² - y², lr {SADDLE_LR:g}, {saddle_steps} steps", fontsize=10)
    ax.legend(fontsize=6.5, loc="lower left")


def draw(settings, names, best, saddle_runs, steps, saddle_steps) -> list[str]:
    """Three panels side by side (Rosenbrock, Beale, saddle), and the saddle as a GIF."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    for ax, surface in zip(axes[:2], SURFACES, strict=True):
        _draw_surface(ax, surface, names, best, steps)
    _draw_saddle(axes[2], names, saddle_runs, saddle_steps)
    return [
        common.save_figure(fig, settings, "gallery"),
        _saddle_gif(settings, names, saddle_runs),
    ]


def saddle_findings(names, escapes, saddle_steps) -> list[str]:
    findings = []
    escaped = sorted((s, n) for n, s in escapes.items() if s is not None)
    stuck = [LABELS[n] for n, s in escapes.items() if s is None]
    if escaped:
        findings.append(
            "Saddle, steps to |y| > 1: "
            + ", ".join(f"{LABELS[n]} {s}" for s, n in escaped)
            + (
                f"; still on the ridge after {saddle_steps} steps: {', '.join(stuck)}"
                if stuck
                else ""
            )
            + "."
        )
    elif stuck:
        findings.append(f"Saddle: none escaped in {saddle_steps} steps.")
    adaptive = [n for n in ("adagrad", "rmsprop", "adam", "adamax", "nadam") if n in escapes]
    sgd_step = escapes.get("sgd")
    if adaptive and "sgd" in escapes:
        faster = [
            LABELS[n]
            for n in adaptive
            if escapes[n] is not None and (sgd_step is None or escapes[n] < sgd_step)
        ]
        findings.append(
            f"Adaptive methods that leave the saddle before plain SGD "
            f"({sgd_step if sgd_step is not None else 'no escape'}): "
            + (", ".join(faster) or "none")
            + " — their per-coordinate scaling enlarges the tiny gradient along y."
        )
    return findings


def findings_of(names, best, escapes, steps, saddle_steps) -> list[str]:
    findings = []
    for surface in SURFACES:
        ranked = sorted(names, key=lambda n: _finite(best[(surface, n)][2][-1]))
        winner, loser = ranked[0], ranked[-1]
        findings.append(
            f"{surface.capitalize()} after {steps} steps (best lr each): lowest final loss "
            f"{LABELS[winner]} ({common.fmt(best[(surface, winner)][2][-1])}), highest "
            f"{LABELS[loser]} ({common.fmt(best[(surface, loser)][2][-1])}); order: "
            + ", ".join(LABELS[n] for n in ranked)
            + "."
        )
    return findings + saddle_findings(names, escapes, saddle_steps)


def headline_of(names, best, escapes) -> str:
    escaped = sorted((s, n) for n, s in escapes.items() if s is not None)
    rosen_best = min(names, key=lambda n: _finite(best[("rosenbrock", n)][2][-1]))
    shown = [f"{LABELS[n]} {s}" for s, n in escaped]
    if len(shown) > 4:
        shown = shown[:3] + ["...", shown[-1]]
    return (
        f"saddle escape steps: {', '.join(shown) or 'none'}; Rosenbrock best: {LABELS[rosen_best]}"
    )


def table_of(names, best, escapes) -> str:
    return common.markdown_table(
        ["optimizer", "Rosenbrock lr", "Rosenbrock f", "Beale lr", "Beale f", "saddle escape"],
        [
            [
                LABELS[n],
                f"{best[('rosenbrock', n)][0]:.0e}",
                common.fmt(best[("rosenbrock", n)][2][-1]),
                f"{best[('beale', n)][0]:.0e}",
                common.fmt(best[("beale", n)][2][-1]),
                escapes[n] if escapes[n] is not None else "—",
            ]
            for n in names
        ],
    )


def run(settings: common.Settings) -> common.Result:
    steps = settings.pick(2000, 600, 60)
    saddle_steps = settings.pick(150, 100, 30)
    grid = GRID if settings.mode != "smoke" else GRID[::4]
    names = common.OPTIMIZER_NAMES if settings.mode != "smoke" else ("sgd", "adam")

    best, rows = best_on_surfaces(names, grid, steps)
    saddle_runs, saddle_rows = saddle_all(names, saddle_steps)
    data = [str(common.write_csv(settings.out / "gallery.csv", rows + saddle_rows))]
    figures = draw(settings, names, best, saddle_runs, steps, saddle_steps)
    escapes = {n: escape_step(saddle_runs[n][1]) for n in names}
    findings = findings_of(names, best, escapes, steps, saddle_steps)
    common.write_summary(
        settings,
        "The optimizer gallery",
        intro=__doc__.split("Run:")[0],
        study_settings={
            "steps (Rosenbrock, Beale)": steps,
            "steps (saddle)": saddle_steps,
            "learning-rate grid": ", ".join(f"{v:.0e}" for v in grid),
            "saddle start": SADDLE_START,
        },
        findings=findings,
        tables=[("Best learning rate and final loss", table_of(names, best, escapes))],
        figures=figures,
        data=data,
    )
    headline = headline_of(names, best, escapes)
    return common.Result(NAME, "Optimizer gallery", findings, headline, figures, data)


def _finite(x) -> float:
    x = float(x)
    return x if np.isfinite(x) else np.inf


def _saddle_gif(settings, names, saddle_runs) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    gx, gy = np.meshgrid(np.linspace(-1.5, 1.5, 120), np.linspace(-1.5, 1.5, 120))
    ax.contour(gx, gy, gx**2 - gy**2, levels=15, colors="0.8", linewidths=0.6)
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    ax.set_title("Saddle z = x² - y²", fontsize=10)
    lines = [
        ax.plot([], [], "-", color=f"C{i}", lw=1.5, label=LABELS[n])[0] for i, n in enumerate(names)
    ]
    heads = [ax.plot([], [], "o", color=f"C{i}", ms=4)[0] for i in range(len(names))]
    ax.legend(fontsize=6.5, loc="lower left")
    n_steps = len(saddle_runs[names[0]][1])
    frames = list(range(0, n_steps, max(1, n_steps // 30))) + [n_steps - 1]

    def draw(t):
        for line, head, name in zip(lines, heads, names, strict=True):
            points = saddle_runs[name][1]
            line.set_data(points[: t + 1, 0], points[: t + 1, 1])
            head.set_data(points[t : t + 1, 0], points[t : t + 1, 1])
        return lines + heads

    animation = FuncAnimation(fig, draw, frames=frames, blit=True)
    path = settings.out / "saddle.gif"
    animation.save(path, writer=PillowWriter(fps=8), dpi=60)
    plt.close(fig)
    return str(path)


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
