"""Asynchronous SGD: Downpour, asynchronous EASGD/EAMSGD on Ray, delay-tolerant AdaGrad, Hogwild!.

Three experiments with ``gradopt.distributed``:

1. Digits (or MNIST / CIFAR-10 from ``--data-dir``), a 64-unit MLP, 2 (full: 2
   and 4) workers on a local Ray cluster, the server sharded over 2 actors:
   Downpour SGD (Adagrad on the server), asynchronous EASGD (local SGD),
   EAMSGD (local Nesterov momentum), against synchronous data parallelism
   (the gradients of all workers averaged each step, in one process) and one
   worker. Test accuracy against wall time and against pushes; each Ray run is
   repeated on the deterministic simulator (same seeds and batches, reads up to
   p - 1 updates stale) to compare accuracies; staleness histograms from the
   runs' telemetry.
2. Delay-tolerant AdaGrad (AdaptiveRevision) against AdaGrad on the simulator,
   on RCV1-like sparse logistic regression, with read delays of hundreds to
   thousands of updates; for each delay the best final loss over a small grid
   of learning rates.
3. Hogwild!: lock-free SGD by 1 and 2 threads on one shared vector (a loop
   compiled by Numba, GIL released), on the sparse logistic problem and on
   matrix completion: updates per second and the final objective against
   serial SGD (the same loop) with the same number of updates; the sparsity
   figures (Omega, Delta, rho) of Niu et al. ``python -m experiments.hogwild``
   measures Hogwild!'s throughput in detail.

Run: ``python -m experiments.async_sgd [--quick]``.
"""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

import gradopt
from experiments import common, datasets, models
from gradopt import distributed as gd

NAME = "async_sgd"
HIDDEN = 64


def mlp_loss(params, x, y):
    return models.cross_entropy(models.mlp_apply(params, x), y)


def digits_part(settings, data):
    import ray

    p_list = settings.pick((2, 4), (2,), (2,))
    steps = settings.pick(400, 150, 20)
    batch = 32
    key = jax.random.PRNGKey(settings.seed)
    init = models.init_mlp(key, [data.num_features, HIDDEN, data.num_classes])
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)

    @jax.jit
    def logits(p):
        return models.mlp_apply(p, x_test)

    def accuracy(p):
        return models.accuracy(logits(p), y_test)

    runs, rows = {}, []
    with warnings.catch_warnings():  # Ray forks + execs its daemons; JAX warns on any fork
        warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for p in p_list:
            shards = [(data.x_train[i::p], data.y_train[i::p]) for i in range(p)]
            algorithms = {
                "Downpour (Adagrad server)": gd.downpour(gradopt.adagrad(0.05)),
                "async EASGD": gd.async_easgd(gradopt.sgd(0.1), alpha=0.9 / p, tau=4),
                "EAMSGD": gd.async_eamsgd(0.05, momentum=0.9, alpha=0.9 / p, tau=4),
            }
            for name, algo in algorithms.items():
                kw = dict(n_workers=p, steps=steps, batch_size=batch, seed=settings.seed)
                real = gd.run_ray(
                    algo,
                    init,
                    mlp_loss,
                    shards,
                    n_shards=2,
                    eval_fn=accuracy,
                    eval_interval=0.25,
                    timeout=600,
                    **kw,
                )
                # a read may be up to p - 1 pushes old, as on Ray with p workers
                sim = gd.simulate(
                    algo, init, mlp_loss, shards, n_shards=2, read_delay=(0, p - 1), **kw
                )
                runs[(name, p)] = real
                rows.append(
                    {
                        "method": name,
                        "workers": p,
                        "ray accuracy": accuracy(real.params),
                        "simulator accuracy": accuracy(sim.params),
                        "ray seconds": real.history[-1]["seconds"],
                        "pushes": sum(real.telemetry.pushes),
                        "pushes per worker": real.telemetry.pushes,
                        "mean delay (ray)": real.telemetry.mean_delay(),
                        "mean delay (simulator)": sim.telemetry.mean_delay(),
                    }
                )
                print(
                    f"  {name}, {p} workers: {rows[-1]['ray accuracy']:.3f} (ray) "
                    f"{rows[-1]['simulator accuracy']:.3f} (simulator)",
                    flush=True,
                )
    finally:
        ray.shutdown()

    # synchronous data parallelism (mean gradient of p batches) and one worker, in-process
    baselines = {}
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    for label, p in [("one worker", 1)] + [(f"synchronous, {q} workers", q) for q in p_list]:
        tx = gradopt.adagrad(0.05)

        @jax.jit
        def step(params, state, idx, tx=tx):
            g = jax.grad(mlp_loss)(params, x_train[idx], y_train[idx])
            u, state = tx.update(g, state, params)
            return gradopt.apply_updates(params, u), state

        rng = np.random.default_rng(settings.seed)
        params, state, hist, t0 = init, tx.init(init), [], time.perf_counter()
        for k in range(steps):
            idx = rng.choice(len(data.x_train), batch * p, replace=False)
            params, state = step(params, state, idx)
            if (k + 1) % max(1, steps // 20) == 0 or k + 1 == steps:
                jax.block_until_ready(params)
                hist.append(
                    {
                        "pushes": (k + 1) * p,
                        "seconds": time.perf_counter() - t0,
                        "metric": accuracy(params),
                    }
                )
        baselines[label] = hist
        rows.append(
            {
                "method": label,
                "workers": p,
                "ray accuracy": hist[-1]["metric"],
                "pushes": steps * p,
                "ray seconds": hist[-1]["seconds"],
            }
        )
    return runs, baselines, rows


def sparse_dense(seed):
    problem = gd.sparse_logistic_problem(n_examples=4000, n_features=1000, nnz=20, seed=seed)
    x = np.zeros((problem.n_examples, problem.n_params), np.float32)
    x[np.repeat(np.arange(problem.n_examples), np.diff(problem.indptr)), problem.indices] = (
        problem.values
    )
    return x, (problem.targets > 0).astype(np.float32)


def logistic(w, x, y):
    z = x @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def delay_part(settings):
    delays = settings.pick((0, 100, 300, 1000, 2000), (0, 300, 1000), (0, 50))
    rates = settings.pick((0.3, 1.0, 3.0), (0.3, 1.0, 3.0), (1.0,))
    steps = settings.pick(10000, 3000, 200)
    x, y = sparse_dense(settings.seed)
    full = jax.jit(logistic)
    rows = []
    for d in delays:
        for lr in rates:
            for name, tx in [
                ("AdaGrad", gradopt.adagrad(lr, 0.1)),
                ("delay-tolerant AdaGrad", gd.delay_tolerant_adagrad(lr, 0.1)),
            ]:
                if d == 0 and name != "AdaGrad":  # identical to AdaGrad without delay
                    loss = rows[-1]["loss"]
                else:
                    res = gd.simulate(
                        gd.downpour(tx),
                        jnp.zeros(x.shape[1], jnp.float32),
                        logistic,
                        [(x, y)],
                        n_workers=1,
                        steps=steps,
                        batch_size=4,
                        read_delay=d,
                        seed=settings.seed,
                    )
                    loss = float(full(res.params, x, y))
                rows.append({"method": name, "delay": d, "learning_rate": lr, "loss": loss})
                print(f"  {name}, delay {d}, lr {lr}: loss {loss:.4f}", flush=True)
    return rows


def hogwild_part(settings):
    problems = {
        "sparse logistic (RCV1-like)": (
            gd.sparse_logistic_problem(seed=settings.seed),
            settings.pick(400_000, 120_000, 4000),
            0.5,
        ),
        "matrix completion": (
            gd.matrix_completion_problem(seed=settings.seed),
            settings.pick(600_000, 150_000, 4000),
            0.1,
        ),
    }
    rows, figures = [], {}
    for name, (problem, n, lr) in problems.items():
        serial = gd.serial_sgd(problem, n_updates=n, learning_rate=lr, seed=settings.seed)
        figures[name] = gd.sparsity_figures(problem, sample=settings.pick(200, 60, 20))
        for k in (1, 2):
            run = gd.hogwild(
                problem, n_workers=k, n_updates=n, learning_rate=lr, seed=settings.seed, timeout=600
            )
            rows.append(
                {
                    "problem": name,
                    "workers": k,
                    "updates": n,
                    "updates/s": run.updates_per_second,
                    "objective": run.objective,
                    "serial objective": serial.objective,
                    "serial updates/s": serial.updates_per_second,
                    "mean delay": run.telemetry.mean_delay(),
                    "delays": run.telemetry.delays,
                }
            )
            print(
                f"  Hogwild {name}, {k} worker(s): {run.updates_per_second:.0f} updates/s, "
                f"objective {run.objective:.5f} (serial {serial.objective:.5f})",
                flush=True,
            )
    return rows, figures


def plot(settings, runs, baselines, delay_rows, hog_rows):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    (a, b, c), (d, e, f) = axes
    for i, ((name, p), r) in enumerate(runs.items()):
        h = r.history
        style = dict(color=f"C{i % 10}", label=f"{name}, {p} workers (Ray)")
        a.plot([x["seconds"] for x in h], [x["metric"] for x in h], **style)
        b.plot([x["pushes"] for x in h], [x["metric"] for x in h], **style)
        delays = r.telemetry.delays
        c.plot(list(delays), list(delays.values()), "o-", ms=3, **style)
    for j, (label, h) in enumerate(baselines.items()):
        style = dict(color="k", ls=["-", "--", ":"][j % 3], label=label + " (in-process)")
        a.plot([x["seconds"] for x in h], [x["metric"] for x in h], **style)
        b.plot([x["pushes"] for x in h], [x["metric"] for x in h], **style)
    a.set(xlabel="wall time (s)", ylabel="test accuracy", title="accuracy vs wall time")
    b.set(
        xlabel="pushes (gradients or elastic differences sent)",
        ylabel="test accuracy",
        title="accuracy vs pushes",
    )
    c.set(
        xlabel="delay (server updates between read and write)",
        ylabel="pushes",
        title="staleness on Ray",
        yscale="log",
    )
    for ax in (a, b):
        ax.set_ylim(0, 1)
        ax.legend(fontsize=6)
    c.legend(fontsize=6)

    for name, marker in (("AdaGrad", "o"), ("delay-tolerant AdaGrad", "s")):
        delays = sorted({r["delay"] for r in delay_rows})
        best = [
            min(r["loss"] for r in delay_rows if r["method"] == name and r["delay"] == dd)
            for dd in delays
        ]
        d.plot(delays, best, marker=marker, label=f"{name} (best learning rate)")
    d.set(
        xlabel="read delay (updates)",
        ylabel="final training loss",
        yscale="log",
        title="delay-tolerant AdaGrad vs AdaGrad (simulator)",
    )
    d.legend(fontsize=7)

    for name in dict.fromkeys(r["problem"] for r in hog_rows):
        rs = [r for r in hog_rows if r["problem"] == name]
        e.plot(
            [0] + [r["workers"] for r in rs],
            [rs[0]["serial updates/s"]] + [r["updates/s"] for r in rs],
            "o-",
            label=name,
        )
        f.bar(
            [f"{name[:6]}\nserial"] + [f"{name[:6]}\n{r['workers']} thr" for r in rs],
            [rs[0]["serial objective"]] + [r["objective"] for r in rs],
        )
    e.set(
        xlabel="Hogwild! threads (0 = serial SGD, same loop)",
        ylabel="updates per second",
        title="Hogwild! throughput",
    )
    e.legend(fontsize=7)
    f.set(ylabel="final objective", title="Hogwild! objective vs serial SGD", yscale="log")
    f.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return common.save_figure(fig, settings, NAME)


def run(settings: common.Settings) -> common.Result:
    data = datasets.load(
        settings.extra.get("dataset") or "digits", settings.extra.get("data_dir"), seed=0
    )
    if data.name != "digits":
        data = data.subset(settings.pick(20000, 5000, 1000), settings.pick(5000, 2000, 500))
    t = {}
    start = time.perf_counter()
    print("[async_sgd] digits on Ray ...", flush=True)
    runs, baselines, digit_rows = digits_part(settings, data)
    t["digits part (s)"] = round(time.perf_counter() - start, 1)
    print("[async_sgd] delay-tolerant AdaGrad on the simulator ...", flush=True)
    start = time.perf_counter()
    delay_rows = delay_part(settings)
    t["delay part (s)"] = round(time.perf_counter() - start, 1)
    print("[async_sgd] Hogwild! ...", flush=True)
    start = time.perf_counter()
    hog_rows, sparsity = hogwild_part(settings)
    t["hogwild part (s)"] = round(time.perf_counter() - start, 1)

    figures = [plot(settings, runs, baselines, delay_rows, hog_rows)]
    data_files = [
        str(common.write_csv(settings.out / "digits.csv", digit_rows)),
        str(common.write_csv(settings.out / "delays.csv", delay_rows)),
        str(common.write_csv(settings.out / "hogwild.csv", hog_rows)),
    ]
    findings = findings_of(digit_rows, delay_rows, hog_rows, sparsity)
    tables = [
        (
            "Digits on Ray",
            common.markdown_table(
                [
                    "method",
                    "workers",
                    "accuracy (Ray)",
                    "accuracy (simulator)",
                    "pushes",
                    "seconds",
                    "mean delay",
                ],
                [
                    [
                        r["method"],
                        r["workers"],
                        f"{r['ray accuracy']:.3f}",
                        f"{r['simulator accuracy']:.3f}" if "simulator accuracy" in r else "—",
                        r["pushes"],
                        f"{r['ray seconds']:.1f}",
                        f"{r['mean delay (ray)']:.2f}" if "mean delay (ray)" in r else "—",
                    ]
                    for r in digit_rows
                ],
            ),
        ),
        (
            "Delay-tolerant AdaGrad vs AdaGrad (final training loss)",
            common.markdown_table(
                ["method", "delay", "learning rate", "loss"],
                [
                    [r["method"], r["delay"], r["learning_rate"], f"{r['loss']:.4f}"]
                    for r in delay_rows
                ],
            ),
        ),
        (
            "Hogwild!",
            common.markdown_table(
                [
                    "problem",
                    "workers",
                    "updates",
                    "updates/s",
                    "objective",
                    "serial objective",
                    "serial updates/s",
                ],
                [
                    [
                        r["problem"],
                        r["workers"],
                        r["updates"],
                        f"{r['updates/s']:.0f}",
                        f"{r['objective']:.5f}",
                        f"{r['serial objective']:.5f}",
                        f"{r['serial updates/s']:.0f}",
                    ]
                    for r in hog_rows
                ],
            ),
        ),
        (
            "Sparsity figures (Niu et al.)",
            common.markdown_table(
                ["problem", "Omega", "Delta", "rho"],
                [
                    [k, v["Omega"], f"{v['Delta']:.4g}", f"{v['rho']:.4g}"]
                    for k, v in sparsity.items()
                ],
            ),
        ),
    ]
    common.write_summary(
        settings,
        "Asynchronous SGD",
        intro=__doc__.split("Run:")[0],
        study_settings={**t, "dataset": data.name, "cpu count": common.versions()["cpu count"]},
        findings=findings,
        tables=tables,
        figures=figures,
        data=data_files,
    )
    speedups = [r["updates/s"] for r in hog_rows if r["workers"] == 2]
    ones = [r["updates/s"] for r in hog_rows if r["workers"] == 1]
    gaps = [
        abs(r["ray accuracy"] - r["simulator accuracy"])
        for r in digit_rows
        if "simulator accuracy" in r
    ]
    ratios = ", ".join(f"{s / o:.2f}x" for s, o in zip(speedups, ones, strict=True))
    headline = f"Ray vs simulator accuracy within {max(gaps):.3f}; Hogwild 2 vs 1 worker: {ratios}"
    return common.Result(NAME, "Asynchronous SGD", findings, headline, figures, data_files)


def findings_of(digit_rows, delay_rows, hog_rows, sparsity):
    out = []
    for r in digit_rows:
        if "simulator accuracy" in r:
            out.append(
                f"{r['method']}, {r['workers']} workers on Ray: test accuracy "
                f"{r['ray accuracy']:.3f} in {r['ray seconds']:.1f} s and {r['pushes']} pushes "
                f"(per worker {r['pushes per worker']}); the simulator with the same seeds: "
                f"{r['simulator accuracy']:.3f} (difference "
                f"{abs(r['ray accuracy'] - r['simulator accuracy']):.3f}); mean delay "
                f"{r['mean delay (ray)']:.2f} on Ray, {r['mean delay (simulator)']:.2f} simulated."
            )
        else:
            out.append(
                f"{r['method']} (in-process): test accuracy {r['ray accuracy']:.3f} after "
                f"{r['pushes']} gradients in {r['ray seconds']:.1f} s."
            )
    for d in sorted({r["delay"] for r in delay_rows}):
        best = {
            m: min(
                (r for r in delay_rows if r["method"] == m and r["delay"] == d),
                key=lambda r: r["loss"],
            )
            for m in ("AdaGrad", "delay-tolerant AdaGrad")
        }
        a, t = best["AdaGrad"], best["delay-tolerant AdaGrad"]
        verdict = (
            "lower" if t["loss"] < a["loss"] else "higher" if t["loss"] > a["loss"] else "equal"
        )
        out.append(
            f"Read delay {d}: delay-tolerant AdaGrad's best loss {t['loss']:.4f} "
            f"(lr {t['learning_rate']}) vs AdaGrad's {a['loss']:.4f} (lr {a['learning_rate']}): "
            f"{verdict}."
        )
    for name in dict.fromkeys(r["problem"] for r in hog_rows):
        one, two = (
            next(r for r in hog_rows if r["problem"] == name and r["workers"] == k) for k in (1, 2)
        )
        gap = (two["objective"] - two["serial objective"]) / two["serial objective"]
        s = sparsity[name]
        out.append(
            f"Hogwild! on {name} (Omega {s['Omega']}, Delta {s['Delta']:.3g}, rho "
            f"{s['rho']:.3g}): {one['updates/s']:.0f} updates/s with 1 worker, "
            f"{two['updates/s']:.0f} with 2 ({two['updates/s'] / one['updates/s']:.2f}x; "
            f"serial SGD {one['serial updates/s']:.0f}); objective with 2 workers "
            f"{two['objective']:.5f} vs serial {two['serial objective']:.5f} "
            f"({100 * gap:+.2f}%); mean delay {two['mean delay']:.3f} updates."
        )
    return out


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv, add_arguments=datasets.add_dataset_arguments)


if __name__ == "__main__":
    main()
