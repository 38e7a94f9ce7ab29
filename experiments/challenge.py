"""The training challenge: a 100-unit MLP on unnormalised pixels, with and without batch norm.

A one-hidden-layer network (64 -> 100 -> 10, ReLU) is trained on scikit-learn's
digits with the raw pixel values 0..16 (no input scaling), so the first layer
sees large, uncentred inputs. The study compares

* plain SGD without and with batch normalisation of the hidden layer (batch
  statistics while training; running averages, momentum 0.9, when evaluating);
* the same with a cosine learning-rate schedule;
* Adam without and with batch normalisation;
* full-batch gradient descent against mini-batch SGD (32) with a larger
  learning rate, for the same number of epochs.

Every run starts from the same weights (He initialisation) and reports the
test accuracy in evaluation mode.

Run: ``python -m experiments.challenge [--quick] [--dataset mnist --data-dir PATH]``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import gradopt
from experiments import common, datasets, models

NAME = "challenge"
HIDDEN = 100
BN_MOMENTUM = 0.9
BN_EPS = 1e-5


# ----------------------------------------------------------------------------
# the model: dense -> [batch norm] -> ReLU -> dense


def init(key, num_features, num_classes):
    k1, k2 = jax.random.split(key)
    params = {
        "w1": jax.random.normal(k1, (num_features, HIDDEN), jnp.float32)
        * (2 / num_features) ** 0.5,
        "b1": jnp.zeros((HIDDEN,), jnp.float32),
        "gamma": jnp.ones((HIDDEN,), jnp.float32),
        "beta": jnp.zeros((HIDDEN,), jnp.float32),
        "w2": jax.random.normal(k2, (HIDDEN, num_classes), jnp.float32) * HIDDEN**-0.5,
        "b2": jnp.zeros((num_classes,), jnp.float32),
    }
    stats = {"mean": jnp.zeros((HIDDEN,), jnp.float32), "var": jnp.ones((HIDDEN,), jnp.float32)}
    return params, stats


def apply(params, stats, x, *, bn: bool, train: bool):
    """Logits and the updated running statistics.

    Training mode normalises with the batch's mean and (biased) variance and
    moves the running averages towards them (with the unbiased variance);
    evaluation mode normalises with the running averages and leaves them alone.
    """
    h = x @ params["w1"] + params["b1"][None, :]
    if bn:
        if train:
            mean = jnp.mean(h, axis=0)
            var = jnp.var(h, axis=0)
            n = h.shape[0]
            unbiased = var * (n / max(n - 1, 1))
            stats = {
                "mean": BN_MOMENTUM * stats["mean"] + (1 - BN_MOMENTUM) * mean,
                "var": BN_MOMENTUM * stats["var"] + (1 - BN_MOMENTUM) * unbiased,
            }
        else:
            mean, var = stats["mean"], stats["var"]
        h = (h - mean[None, :]) * jax.lax.rsqrt(var[None, :] + BN_EPS)
        h = h * params["gamma"][None, :] + params["beta"][None, :]
    h = jax.nn.relu(h)
    return h @ params["w2"] + params["b2"][None, :], stats


@functools.partial(jax.jit, static_argnames=("bn", "train"))
def evaluate(params, stats, x, *, bn, train):
    return apply(params, stats, x, bn=bn, train=train)[0]


def _loss(params, stats, x, y, *, bn):
    logits, stats = apply(params, stats, x, bn=bn, train=True)
    return models.cross_entropy(logits, y), stats


def _epoch(params, stats, state, key, epoch, x, y, *, tx, bn, batch_size):
    ix = gradopt.data.epoch_indices(
        x.shape[0], batch_size, order="shuffle", key=key, epoch=epoch, drop_last=True
    )
    grad_fn = jax.value_and_grad(functools.partial(_loss, bn=bn), has_aux=True)

    def step(carry, idx):
        params, stats, state = carry
        (value, stats), grads = grad_fn(params, stats, x[idx], y[idx])
        updates, state = tx.update(grads, state, params)
        return (gradopt.apply_updates(params, updates), stats, state), value

    (params, stats, state), losses = jax.lax.scan(step, (params, stats, state), ix.indices)
    return params, stats, state, losses


def configurations(epochs: int, steps_per_epoch: int):
    """(name, optimizer, batch norm, batch size, description) for every run."""
    total = epochs * steps_per_epoch
    cosine = gradopt.schedules.cosine(0.05, total)
    return [
        ("SGD", gradopt.sgd(0.05), False, 32, "lr 0.05"),
        ("SGD + BN", gradopt.sgd(0.05), True, 32, "lr 0.05"),
        ("SGD + cosine", gradopt.sgd(cosine), False, 32, "lr 0.05 -> 0 (cosine)"),
        ("SGD + BN + cosine", gradopt.sgd(cosine), True, 32, "lr 0.05 -> 0 (cosine)"),
        ("Adam", gradopt.adam(1e-3), False, 32, "lr 1e-3"),
        ("Adam + BN", gradopt.adam(1e-3), True, 32, "lr 1e-3"),
        ("full-batch GD + BN", gradopt.sgd(0.01), True, None, "lr 0.01, 1 step/epoch"),
        ("mini-batch SGD + BN, larger lr", gradopt.sgd(0.1), True, 32, "lr 0.1"),
    ]


def load_data(settings):
    data = datasets.load(
        settings.extra.get("dataset", "digits"),
        settings.extra.get("data_dir"),
        seed=settings.seed,
        scale="raw",
    )
    return data.subset(settings.pick(None, None, 256), settings.pick(None, 2000, 100))


def train_one(data, config, epochs, seed):
    """Train one configuration; its per-epoch history and its CSV row."""
    name, tx, bn, batch_size, lr_text = config
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test = jnp.asarray(data.x_test)
    params, stats = init(jax.random.key(seed), data.num_features, data.num_classes)
    key = jax.random.key(seed + 1)
    epoch_fn = jax.jit(functools.partial(_epoch, tx=tx, bn=bn, batch_size=batch_size))
    state = tx.init(params)
    history = []
    for epoch in range(epochs):
        params, stats, state, losses = epoch_fn(params, stats, state, key, epoch, x, y)
        test_logits = evaluate(params, stats, x_test, bn=bn, train=False)
        history.append(
            {
                "train_loss": float(jnp.mean(losses)),
                "test_accuracy": models.accuracy(test_logits, data.y_test),
            }
        )
    # The same network evaluated (wrongly) with the test set's own batch statistics.
    batch_logits = evaluate(params, stats, x_test, bn=bn, train=True)
    row = {
        "run": name,
        "batch norm": bn,
        "batch": "full" if batch_size is None else batch_size,
        "learning rate": lr_text,
        "final train loss": history[-1]["train_loss"],
        "test accuracy (eval mode)": history[-1]["test_accuracy"],
        "best test accuracy": max(h["test_accuracy"] for h in history),
        "test accuracy with test-batch statistics": models.accuracy(batch_logits, data.y_test)
        if bn
        else None,
    }
    return history, row


def draw(settings, results, epochs, data_name) -> list[str]:
    """Training loss and test accuracy per epoch, for every run."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for i, (name, history) in enumerate(results.items()):
        style = "-" if "BN" in name else "--"
        epochs_axis = np.arange(1, epochs + 1)
        losses = np.asarray([h["train_loss"] for h in history])
        axes[0].semilogy(
            epochs_axis,
            np.where(np.isfinite(losses), losses, np.nan),
            style,
            color=f"C{i}",
            label=name,
        )
        axes[1].plot(
            epochs_axis, [h["test_accuracy"] for h in history], style, color=f"C{i}", label=name
        )
    axes[0].set_title("training loss (mean over the epoch's batches)", fontsize=9)
    axes[1].set_title("test accuracy (evaluation mode)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"100-unit MLP on raw pixels 0..16 ({data_name}); dashed: no batch norm")
    return [common.save_figure(fig, settings, "challenge")]


_COMPARISONS = (
    ("SGD", "SGD + BN", "Batch norm with SGD"),
    ("SGD", "SGD + cosine", "Cosine schedule from 0.05 vs constant lr 0.05"),
    ("SGD + BN", "SGD + BN + cosine", "Cosine schedule with batch norm"),
    ("Adam", "Adam + BN", "Batch norm with Adam"),
    ("SGD", "Adam", "Adam vs SGD without batch norm"),
    ("full-batch GD + BN", "mini-batch SGD + BN, larger lr", "Same epochs"),
)


def findings_of(rows) -> list[str]:
    """Pairwise comparisons, the evaluation-mode gap of batch norm, best and worst runs."""
    acc = {r["run"]: r["test accuracy (eval mode)"] for r in rows}
    findings = []
    for a, b, what in _COMPARISONS:
        if a in acc and b in acc:
            findings.append(
                f"{what}: {b} {acc[b]:.3f} vs {a} {acc[a]:.3f} test accuracy "
                f"({'+' if acc[b] >= acc[a] else ''}{100 * (acc[b] - acc[a]):.1f} points)."
            )
    bn_rows = [r for r in rows if r["batch norm"]]
    if bn_rows:
        gaps = [
            r["test accuracy (eval mode)"] - r["test accuracy with test-batch statistics"]
            for r in bn_rows
        ]
        i = int(np.argmax(np.abs(gaps)))
        findings.append(
            "Evaluation mode (running averages) minus evaluation with the test batch's own "
            f"statistics: at most {100 * abs(gaps[i]):.1f} points of accuracy apart "
            f"(largest for {bn_rows[i]['run']}); the median gap is "
            f"{100 * float(np.median(np.abs(gaps))):.1f} points."
        )
    best = max(acc, key=acc.get)
    worst = min(acc, key=acc.get)
    findings.append(f"Best run: {best} ({acc[best]:.3f}); worst: {worst} ({acc[worst]:.3f}).")
    return findings


def headline_of(rows) -> str:
    acc = {r["run"]: r["test accuracy (eval mode)"] for r in rows}
    best = max(acc, key=acc.get)

    def a(name):
        return f"{acc[name]:.2f}" if name in acc else "—"

    return (
        f"test acc SGD {a('SGD')} -> +BN {a('SGD + BN')}; Adam {a('Adam')} -> +BN "
        f"{a('Adam + BN')}; best {best} {acc[best]:.2f}"
    )


def table_of(rows) -> str:
    return common.markdown_table(
        ["run", "BN", "batch", "learning rate", "train loss", "test acc", "best test acc"],
        [
            [
                r["run"],
                "yes" if r["batch norm"] else "no",
                r["batch"],
                r["learning rate"],
                common.fmt(r["final train loss"]),
                f"{r['test accuracy (eval mode)']:.3f}",
                f"{r['best test accuracy']:.3f}",
            ]
            for r in rows
        ],
    )


def run(settings: common.Settings) -> common.Result:
    data = load_data(settings)
    epochs = settings.pick(40, 10, 2)
    configs = configurations(epochs, len(data.x_train) // 32)
    if settings.mode == "smoke":
        configs = configs[:2]

    results, rows = {}, []
    for config in common.progress(configs, desc="challenge"):
        results[config[0]], row = train_one(data, config, epochs, settings.seed)
        rows.append(row)
    data_files = [
        str(common.write_csv(settings.out / "challenge.csv", rows)),
        str(common.write_json(settings.out / "history.json", results)),
    ]
    figures = draw(settings, results, epochs, data.name)
    findings = findings_of(rows)
    common.write_summary(
        settings,
        "The training challenge",
        intro=__doc__.split("Run:")[0],
        study_settings={
            "dataset": f"{data.name} (raw pixel values)",
            "training examples": len(data.x_train),
            "epochs": epochs,
            "hidden units": HIDDEN,
        },
        findings=findings,
        tables=[("Test accuracy", table_of(rows))],
        figures=figures,
        data=data_files,
    )
    return common.Result(
        NAME, "The training challenge", findings, headline_of(rows), figures, data_files
    )


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv, add_arguments=datasets.add_dataset_arguments)


if __name__ == "__main__":
    main()
