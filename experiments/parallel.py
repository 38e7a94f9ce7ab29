"""Synchronous parallel SGD on 8 simulated devices: data parallelism, EASGD, local SGD, DiLoCo.

Eight workers on a mesh of 8 host devices, each drawing mini-batches of 16
examples from its own eighth of the training set (digits, or MNIST / CIFAR-10
from ``--data-dir``), all with plain SGD at the same learning rate:

* synchronous data parallelism (``gradopt.distributed.data_parallel``): one
  step on the 8 x 16 examples, one all-reduce per step;
* EASGD (``gradopt.distributed.easgd``, alpha = 0.9 / 8) exchanging every
  tau = 1, 4, 16 steps (one all-reduce per exchange), and EAMSGD with tau = 4;
* local SGD without exchange (EASGD with alpha = 0: eight independent runs);
* local SGD with periodic averaging every H = 16 steps (``diloco`` with
  ``outer = sgd(1.0)``: the workers' parameters are averaged);
* DiLoCo (``gradopt.distributed.diloco``, Douillard et al. 2023), H = 16
  inner SGD steps per round and the paper's outer step (Nesterov SGD,
  learning rate 0.7, momentum 0.9) on the mean displacement;
* one worker alone (16 examples per step).

Test accuracy of the model each method would ship (the replicated parameters,
the center variable, DiLoCo's global parameters; for local SGD without
exchange the mean over the workers and the average of their parameters) is
plotted against steps and against communication rounds (one all-reduce of
the parameters per exchange, per averaging, per DiLoCo round or per
data-parallel step). A second measurement: optimizer-state bytes per device
for Adam on the network, replicated vs ZeRO-1
(``gradopt.distributed.sharded``), for 1, 2, 4 and 8 devices, read from the
arrays' addressable shards.

The training runs in a child process started with 8 host devices (the device
count must be set before JAX starts). Run: ``python -m experiments.parallel
[--quick]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from experiments import common

NAME = "parallel"
WORKERS = 8
BATCH = 16
HIDDEN = 64


def _methods():
    return [
        ("data parallel", "dp", None),
        ("EASGD tau=1", "easgd", 1),
        ("EASGD tau=4", "easgd", 4),
        ("EASGD tau=16", "easgd", 16),
        ("EAMSGD tau=4", "eamsgd", 4),
        ("local SGD (no exchange)", "local", None),
        ("local SGD, averaging H=16", "average", 16),
        ("DiLoCo H=16", "diloco", 16),
        ("one worker", "one", None),
    ]


def compute(config: dict) -> dict:
    """The child process's work (8 host devices): every run and the state-bytes table."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import gradopt
    from experiments import datasets, models
    from gradopt import distributed as dist

    data = datasets.load(config["dataset"], config["data_dir"], seed=config["seed"])
    steps, every, lr = config["steps"], config["every"], config["learning_rate"]
    rng = np.random.default_rng(config["seed"])
    n_train = len(data.x_train)
    shards = np.array_split(rng.permutation(n_train), WORKERS)
    # idx[t, i]: worker i's mini-batch at step t, drawn from its own shard.
    idx = np.stack([rng.choice(s, size=(steps, BATCH)) for s in shards], axis=1)
    one_idx = rng.integers(0, n_train, size=(steps, BATCH))
    x_train, y_train = data.x_train, data.y_train
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    sizes = (x_train.shape[1], HIDDEN, data.num_classes)
    init = models.init_mlp(jax.random.PRNGKey(config["seed"]), sizes)

    def loss_fn(params, batch):
        return models.cross_entropy(models.mlp_apply(params, batch[0]), batch[1])

    @jax.jit
    def test_accuracy(params):
        logits = models.mlp_apply(params, x_test)
        return jnp.mean((jnp.argmax(logits, axis=-1) == y_test).astype(jnp.float32))

    auto = (jax.sharding.AxisType.Auto,)
    mesh = jax.make_mesh((WORKERS,), ("workers",), axis_types=auto)
    by_worker = NamedSharding(mesh, PartitionSpec("workers"))
    runs = {}
    for label, kind, tau in _methods():
        curve = []
        if kind == "dp":
            dp = dist.data_parallel(loss_fn, gradopt.sgd(lr), mesh, "workers")
            params, state = dp.init(init)
        elif kind == "one":
            tx = gradopt.sgd(lr)
            params, state = init, tx.init(init)

            @jax.jit
            def one_step(params, state, batch, tx=tx):
                grads = jax.grad(loss_fn)(params, batch)
                updates, state = tx.update(grads, state, params)
                return gradopt.apply_updates(params, updates), state

        else:
            alpha = 0.0 if kind == "local" else 0.9 / WORKERS
            if kind in ("average", "diloco"):
                outer = gradopt.sgd(1.0) if kind == "average" else None  # None: the paper's
                tx = dist.diloco(gradopt.sgd(lr), outer, sync_every=tau, mesh=mesh, axis="workers")
            elif kind == "eamsgd":
                tx = dist.eamsgd(
                    lr / 2, momentum=0.5, alpha=alpha, tau=tau, mesh=mesh, axis="workers"
                )
            else:
                inner = gradopt.sgd(lr)
                tx = dist.easgd(inner, alpha=alpha, tau=tau or 1, mesh=mesh, axis="workers")
            params = dist.stack_workers(init, WORKERS, mesh, "workers")
            state = tx.init(params)
            step = dist.worker_step(loss_fn, tx)
        for t in range(steps + 1):
            if t % every == 0 or t == steps:
                if kind == "local":
                    accs = [
                        float(test_accuracy(jax.tree.map(lambda x, i=i: x[i], params)))
                        for i in range(WORKERS)
                    ]
                    averaged = float(
                        test_accuracy(jax.tree.map(lambda x: jnp.mean(x, axis=0), params))
                    )
                    curve.append(
                        {"step": t, "accuracy": float(np.mean(accs)), "averaged": averaged}
                    )
                elif kind in ("easgd", "eamsgd"):
                    curve.append({"step": t, "accuracy": float(test_accuracy(state.center))})
                elif kind in ("average", "diloco"):
                    curve.append({"step": t, "accuracy": float(test_accuracy(state.params))})
                else:
                    curve.append({"step": t, "accuracy": float(test_accuracy(params))})
            if t == steps:
                break
            if kind == "dp":
                flat = idx[t].reshape(-1)
                batch = dp.shard_batch((x_train[flat], y_train[flat]))
                params, state, _ = jax.block_until_ready(dp.step(params, state, batch))
            elif kind == "one":
                batch = (jnp.asarray(x_train[one_idx[t]]), jnp.asarray(y_train[one_idx[t]]))
                params, state = jax.block_until_ready(one_step(params, state, batch))
            else:
                batch = jax.device_put((x_train[idx[t]], y_train[idx[t]]), by_worker)
                params, state, _ = jax.block_until_ready(step(params, state, batch))
        if kind in ("average", "diloco"):
            rounds = steps // tau  # a round ends with its all-reduce
        else:
            rounds = {"dp": steps, "one": 0, "local": 0}.get(kind, -(-steps // (tau or 1)))
        runs[label] = {"curve": curve, "rounds": rounds, "tau": tau, "kind": kind}
        print(f"  {label}: test accuracy {curve[-1]['accuracy']:.3f}", flush=True)

    # Optimizer-state bytes per device: Adam replicated vs ZeRO-1, N = 1, 2, 4, 8.
    memory = []
    for n in (1, 2, 4, 8):
        sub = Mesh(np.array(jax.devices()[:n]), ("data",))
        params = jax.device_put(init, NamedSharding(sub, PartitionSpec()))
        for label, tx in (
            ("replicated", gradopt.adam(1e-3)),
            ("sharded", dist.sharded(gradopt.adam(1e-3), sub, "data")),
        ):
            per_device: dict[int, int] = {}
            for leaf in jax.tree.leaves(tx.init(params)):
                for shard in leaf.addressable_shards:
                    per_device[shard.device.id] = (
                        per_device.get(shard.device.id, 0) + shard.data.nbytes
                    )
            memory.append(
                {
                    "devices": n,
                    "state": label,
                    "max bytes per device": max(per_device.values()),
                    "min bytes per device": min(per_device.values()),
                }
            )
    n_params = int(sum(np.size(x) for x in jax.tree.leaves(init)))
    return {
        "runs": runs,
        "memory": memory,
        "n_params": n_params,
        "dataset": data.name,
        "n_train": n_train,
        "n_test": len(data.x_test),
    }


def _child(config: dict, out: Path) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={WORKERS}"
    env["JAX_PLATFORMS"] = "cpu"
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    path = out / "runs.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.parallel",
            "--child",
            json.dumps(config),
            "--out",
            str(out),
        ],
        env=env,
        check=True,
        timeout=config["timeout"],
    )
    return json.loads(path.read_text())


def run(settings: common.Settings) -> common.Result:
    import matplotlib.pyplot as plt

    config = {
        "steps": settings.pick(1500, 300, 20),
        "every": settings.pick(50, 25, 10),
        "learning_rate": 0.2,
        "seed": settings.seed,
        "dataset": settings.extra.get("dataset") or "digits",
        "data_dir": settings.extra.get("data_dir"),
        "timeout": settings.pick(3000, 600, 300),
    }
    print(f"[{NAME}] training 8 workers on 8 simulated devices (child process)...", flush=True)
    result = _child(config, settings.out)
    runs, memory = result["runs"], result["memory"]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for label, r in runs.items():
        steps = [p["step"] for p in r["curve"]]
        acc = [p["accuracy"] for p in r["curve"]]
        style = {"local": "--", "one": "--", "average": ":", "diloco": "-."}.get(r["kind"], "-")
        axes[0].plot(steps, acc, style, label=label)
        if r["rounds"]:
            per_round = r["rounds"] / max(steps[-1], 1)
            axes[1].plot([s * per_round for s in steps], acc, style, label=label)
    axes[0].set(
        xlabel="step", ylabel="test accuracy", title=f"{result['dataset']}: accuracy vs steps"
    )
    axes[1].set(
        xlabel="communication rounds (all-reduces)",
        ylabel="test accuracy",
        xscale="symlog",
        title="accuracy vs communication",
    )
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    for label, marker in (("replicated", "o"), ("sharded", "s")):
        rows = [m for m in memory if m["state"] == label]
        axes[2].plot(
            [m["devices"] for m in rows],
            [m["max bytes per device"] / 1024 for m in rows],
            marker=marker,
            label=f"Adam state, {label}",
        )
    axes[2].set(
        xlabel="devices N",
        ylabel="KiB per device (max)",
        xscale="log",
        yscale="log",
        title="optimizer state per device (ZeRO-1)",
    )
    axes[2].set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
    axes[2].xaxis.set_minor_formatter(plt.NullFormatter())
    axes[2].yaxis.set_minor_formatter(plt.NullFormatter())
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    figures = [common.save_figure(fig, settings, "parallel", dpi=90)]

    rows_csv = [
        {"method": label, **p, "rounds": r["rounds"]}
        for label, r in runs.items()
        for p in r["curve"]
    ]
    data = [
        str(common.write_csv(settings.out / "curves.csv", rows_csv)),
        str(common.write_csv(settings.out / "state_bytes.csv", memory)),
    ]

    final = {label: r["curve"][-1]["accuracy"] for label, r in runs.items()}
    best_easgd = max((k for k in final if k.startswith("EASGD")), key=final.get)
    local = runs["local SGD (no exchange)"]["curve"][-1]
    mem = {(m["devices"], m["state"]): m["max bytes per device"] for m in memory}
    table = common.markdown_table(
        ["method", "final test accuracy", "communication rounds"],
        [[k, f"{final[k]:.3f}", runs[k]["rounds"]] for k in final],
    )
    mem_table = common.markdown_table(
        ["devices", "replicated Adam state (bytes/device)", "sharded (bytes/device)", "ratio"],
        [
            [
                n,
                mem[(n, "replicated")],
                mem[(n, "sharded")],
                f"{mem[(n, 'replicated')] / mem[(n, 'sharded')]:.2f}",
            ]
            for n in (1, 2, 4, 8)
        ],
    )
    dp_acc, best_acc, one_acc = final["data parallel"], final[best_easgd], final["one worker"]
    ratio8 = mem[(8, "replicated")] / mem[(8, "sharded")]
    budget = runs["EASGD tau=16"]["rounds"]
    dp_at = next(p for p in runs["data parallel"]["curve"] if p["step"] >= budget)
    findings = [
        f"After {config['steps']} steps: data parallelism {dp_acc:.3f} test accuracy "
        f"({runs['data parallel']['rounds']} all-reduces), best EASGD ({best_easgd}) "
        f"{best_acc:.3f} with {runs[best_easgd]['rounds']} exchanges, one worker {one_acc:.3f}.",
        f"EASGD tau=16 reaches {final['EASGD tau=16']:.3f} with {runs['EASGD tau=16']['rounds']} "
        f"exchanges, tau=1 {final['EASGD tau=1']:.3f} with {runs['EASGD tau=1']['rounds']}.",
        f"At equal communication: after {dp_at['step']} all-reduces data parallelism has "
        f"{dp_at['accuracy']:.3f}; EASGD tau=16 ends at {final['EASGD tau=16']:.3f} after "
        f"{runs['EASGD tau=16']['rounds']} exchanges.",
        f"Local SGD without exchange: the workers average {local['accuracy']:.3f} (each sees one "
        f"eighth of the data); the average of their parameters scores {local['averaged']:.3f}.",
        f"DiLoCo (H=16, Nesterov outer step) {final['DiLoCo H=16']:.3f} and local SGD "
        f"averaging every 16 steps {final['local SGD, averaging H=16']:.3f} with "
        f"{runs['DiLoCo H=16']['rounds']} all-reduces each, EASGD tau=16 "
        f"{final['EASGD tau=16']:.3f} with {budget}; data parallelism has {dp_at['accuracy']:.3f} "
        f"after {dp_at['step']} all-reduces and {dp_acc:.3f} after "
        f"{runs['data parallel']['rounds']}.",
        f"Adam state for {result['n_params']} parameters: {mem[(8, 'replicated')]} bytes on "
        f"each of 8 devices replicated, {mem[(8, 'sharded')]} sharded ({ratio8:.2f}x less).",
    ]
    headline = (
        f"8 workers: data parallel {dp_acc:.3f}, {best_easgd} {best_acc:.3f}, DiLoCo H=16 "
        f"{final['DiLoCo H=16']:.3f}, one worker {one_acc:.3f}; ZeRO-1 state {ratio8:.1f}x "
        "smaller on 8 devices"
    )
    common.write_summary(
        settings,
        "Synchronous parallel SGD: data parallelism, EASGD, local SGD, DiLoCo, ZeRO-1",
        intro=__doc__.split("The training runs")[0],
        study_settings={k: v for k, v in config.items() if k != "timeout"}
        | {"workers": WORKERS, "batch per worker": BATCH, "hidden units": HIDDEN},
        findings=findings,
        tables=[("Final accuracy", table), ("Optimizer state per device", mem_table)],
        figures=figures,
        data=data,
    )
    return common.Result(NAME, "Synchronous parallel SGD", findings, headline, figures, data)


def _add_arguments(parser) -> None:
    from experiments import datasets

    datasets.add_dataset_arguments(parser)


def main(argv=None) -> common.Result | None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--child" in argv:
        config = json.loads(argv[argv.index("--child") + 1])
        out = Path(argv[argv.index("--out") + 1])
        common.write_json(out / "runs.json", compute(config))
        return None
    return common.main_for(NAME, __doc__, run, argv, add_arguments=_add_arguments)


if __name__ == "__main__":
    main()
