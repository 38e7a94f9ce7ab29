"""Strategies: annealed gradient noise, early stopping, curriculum order, reduce-on-plateau.

Four small experiments on scikit-learn's digits, each with one gradopt tool:

1. ``gradopt.add_gradient_noise``: a deep narrow ReLU network (10 hidden layers
   of 20 units) with a poor initialisation (weights N(0, 0.2²), so the signal
   shrinks layer by layer), trained by SGD with momentum (mini-batches of 64), without noise and
   with annealed noise of initial variance eta (sigma_t² = eta / (1 + t)^0.55).
2. ``gradopt.EarlyStopping``: a 100-unit MLP trained by Adam on a small
   training set (so it overfits) with a validation split; patience 5 on the
   validation loss, best weights restored. Training continues past the stop
   only to draw what would have happened.
3. ``gradopt.data`` curriculum order: easy examples first (difficulty = distance
   to the class mean, shuffled within four bands) against a fresh shuffle every
   epoch.
4. ``gradopt.reduce_on_plateau``: full-batch Adam (lr 0.01) on 300
   examples, monitored on the loss of 300 validation examples; the scale halves
   after 10 steps without improvement. Compared with the same run at a constant rate.

Run: ``python -m experiments.strategies [--quick]``.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

import gradopt
from experiments import common, datasets, models

NAME = "strategies"
PLATEAU_LR = 0.01


def mlp_loss(params, x, y, mask=None):
    return models.cross_entropy(models.mlp_apply(params, x), y, mask)


@jax.jit
def full_loss(params, x, y):
    return mlp_loss(params, x, y)


def train_epochs(
    params,
    tx,
    x,
    y,
    epochs,
    *,
    key,
    batch_size=32,
    order="shuffle",
    scores=None,
    num_bands=None,
    after_epoch=None,
):
    """Train for ``epochs``; returns the final params and per-epoch full training loss."""
    state = tx.init(params)
    fn = models.epoch_fn(mlp_loss, tx, x.shape[0], batch_size, order=order, num_bands=num_bands)
    losses = []
    for epoch in range(epochs):
        params, state, _ = fn(params, state, key, epoch, x, y, scores)
        losses.append(float(full_loss(params, x, y)))
        if after_epoch is not None:
            after_epoch(epoch, params)
    return params, np.asarray(losses)


# ----------------------------------------------------------------------------
# 1. gradient noise


def gradient_noise(settings, data, bar):
    epochs = settings.pick(40, 8, 2)
    etas = settings.pick((0.0, 0.01, 0.3, 1.0), (0.0, 0.3), (0.0, 0.3))
    seeds = settings.pick((0, 1, 2), (0,), (0,))
    depth, width = 10, 20
    sizes = (data.num_features,) + (width,) * depth + (10,)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    out = {}
    for eta in etas:
        curves, accs = [], []
        for seed in seeds:
            s = settings.seed + seed
            params = models.init_mlp(jax.random.key(s), sizes, scale=0.2)
            tx = gradopt.sgd(0.01, momentum=0.9)
            if eta > 0:
                tx = gradopt.chain(gradopt.add_gradient_noise(eta, 0.55, seed=s), tx)
            params, losses = train_epochs(
                params, tx, x, y, epochs, key=jax.random.key(s + 100), batch_size=64
            )
            curves.append(losses)
            accs.append(
                models.accuracy(models.mlp_apply(params, jnp.asarray(data.x_test)), data.y_test)
            )
            bar.update()
        out[eta] = {"losses": np.stack(curves), "test_accuracy": accs}
    return out, {"epochs": epochs, "depth x width": f"{depth} x {width}", "seeds": len(seeds)}


# ----------------------------------------------------------------------------
# 2. early stopping


def early_stopping(settings, data, bar):
    epochs = settings.pick(150, 40, 5)
    n_train = settings.pick(150, 150, 100)
    n_val = 300 if settings.mode != "smoke" else 100
    x, y = jnp.asarray(data.x_train[:n_train]), jnp.asarray(data.y_train[:n_train])
    xv = jnp.asarray(data.x_train[n_train : n_train + n_val])
    yv = jnp.asarray(data.y_train[n_train : n_train + n_val])
    params = models.init_mlp(jax.random.key(settings.seed), (data.num_features, 100, 10))
    stopper = gradopt.EarlyStopping("val_loss", patience=5, restore_best_weights=True)
    val_losses, stop = [], {}

    def after_epoch(epoch, params):
        val = float(full_loss(params, xv, yv))
        val_losses.append(val)
        if not stop and stopper.update(val, params):
            stop.update(epoch=epoch, params=stopper.best_params, best_epoch=stopper.best_epoch)
        bar.update()

    tx = gradopt.adam(1e-2)
    final, train_losses = train_epochs(
        params, tx, x, y, epochs, key=jax.random.key(settings.seed + 1), after_epoch=after_epoch
    )
    x_test = jnp.asarray(data.x_test)
    restored = stop.get("params", final)
    out = {
        "train_losses": train_losses,
        "val_losses": np.asarray(val_losses),
        "stopped_epoch": stop.get("epoch"),
        "best_epoch": stop.get("best_epoch", stopper.best_epoch),
        "best_val_loss": stopper.best,
        "test_accuracy_restored": models.accuracy(models.mlp_apply(restored, x_test), data.y_test),
        "test_accuracy_last": models.accuracy(models.mlp_apply(final, x_test), data.y_test),
        "test_loss_restored": float(full_loss(restored, x_test, jnp.asarray(data.y_test))),
        "test_loss_last": float(full_loss(final, x_test, jnp.asarray(data.y_test))),
    }
    return out, {"epochs (budget)": epochs, "train / validation": f"{n_train} / {n_val}"}


# ----------------------------------------------------------------------------
# 3. curriculum


def difficulty(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance of each example to the mean of its class (far from the mean = hard)."""
    scores = np.empty(len(x), np.float32)
    for c in np.unique(y):
        rows = y == c
        scores[rows] = np.linalg.norm(x[rows] - x[rows].mean(axis=0), axis=1)
    return scores


def curriculum(settings, data, bar):
    epochs = settings.pick(20, 8, 2)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    scores = jnp.asarray(difficulty(data.x_train, data.y_train))
    out = {}
    for order in ("shuffle", "curriculum"):
        params = models.init_mlp(jax.random.key(settings.seed), (data.num_features, 32, 10))
        kwargs = {"scores": scores, "num_bands": 4} if order == "curriculum" else {}
        params, losses = train_epochs(
            params,
            gradopt.sgd(0.05),
            x,
            y,
            epochs,
            key=jax.random.key(settings.seed + 1),
            order=order,
            **kwargs,
        )
        out[order] = {
            "losses": losses,
            "test_accuracy": models.accuracy(
                models.mlp_apply(params, jnp.asarray(data.x_test)), data.y_test
            ),
        }
        bar.update()
    return out, {"curriculum epochs": epochs}


# ----------------------------------------------------------------------------
# 4. reduce on plateau


@functools.partial(jax.jit, static_argnames=("tx", "steps"))
def _full_batch(params, x, y, xv, yv, *, tx, steps):
    """Full-batch training; the monitored value is the validation loss at each step."""
    value_and_grad = jax.value_and_grad(mlp_loss)

    def step(carry, _):
        params, state = carry
        value, grads = value_and_grad(params, x, y)
        val = mlp_loss(params, xv, yv)
        updates, state = tx.update(grads, state, params, value=val)
        last = state[-1] if isinstance(state, tuple) and state else state
        if isinstance(last, gradopt.ReduceOnPlateauState):
            scale = last.scale
        else:
            scale = jnp.ones([], jnp.float32)
        return (gradopt.apply_updates(params, updates), state), (value, val, scale)

    _, out = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return out


def plateau(settings, data, bar):
    steps = settings.pick(1000, 300, 20)
    n = 300 if settings.mode != "smoke" else 100
    x, y = jnp.asarray(data.x_train[:n]), jnp.asarray(data.y_train[:n])
    xv, yv = jnp.asarray(data.x_train[n : 2 * n]), jnp.asarray(data.y_train[n : 2 * n])
    params = models.init_mlp(jax.random.key(settings.seed), (data.num_features, 64, 10))
    base = gradopt.adam(PLATEAU_LR)
    out = {}
    for name, tx in (
        ("constant", base),
        ("reduce_on_plateau", gradopt.chain(base, gradopt.reduce_on_plateau(0.5, 10))),
    ):
        losses, val_losses, scales = _full_batch(params, x, y, xv, yv, tx=tx, steps=steps)
        out[name] = {
            "losses": np.asarray(losses),
            "val_losses": np.asarray(val_losses),
            "scales": np.asarray(scales),
        }
        bar.update()
    return out, {"plateau steps": steps, "plateau Adam lr": PLATEAU_LR, "plateau train/val": n}


# ----------------------------------------------------------------------------


def run_parts(settings, data):
    """The four strategies in turn; their results, settings and seconds each."""
    total = 2 + 2 + settings.pick(150, 40, 5) + settings.pick(12, 3, 2)
    bar = common.progress(total=total, desc="strategies")
    seconds, results, study_settings = {}, [], {}
    for part in (gradient_noise, early_stopping, curriculum, plateau):
        t0 = time.perf_counter()
        result, part_settings = part(settings, data, bar)
        results.append(result)
        study_settings.update(part_settings)
        seconds[f"{part.__name__} seconds"] = round(time.perf_counter() - t0, 1)
    bar.close()
    return results, {**study_settings, **seconds}


def _draw_noise(ax, noise):
    for i, (eta, r) in enumerate(noise.items()):
        mean = r["losses"].mean(axis=0)
        ax.semilogy(
            np.arange(1, len(mean) + 1),
            mean,
            color=f"C{i}",
            label=f"eta={eta:g} (test acc {np.mean(r['test_accuracy']):.2f})",
        )
    ax.set_title("gradient noise: deep narrow net, poor init", fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)


def _draw_early_stopping(ax, stop):
    ax.plot(np.arange(len(stop["train_losses"])), stop["train_losses"], label="training")
    ax.plot(np.arange(len(stop["val_losses"])), stop["val_losses"], label="validation")
    if stop["stopped_epoch"] is not None:
        ax.axvline(stop["stopped_epoch"], color="C3", ls="--", label="stopped")
    ax.axvline(stop["best_epoch"], color="C2", ls=":", label="restored best")
    ax.set_yscale("log")
    ax.set_title("early stopping (patience 5)", fontsize=9)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)


def _draw_curriculum(ax, curr):
    for order, r in curr.items():
        ax.semilogy(
            np.arange(1, len(r["losses"]) + 1),
            r["losses"],
            label=f"{order} (test acc {r['test_accuracy']:.3f})",
        )
    ax.set_title("curriculum (easy first, 4 bands) vs shuffled", fontsize=9)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)


def _draw_plateau(ax, plat):
    for i, (name, r) in enumerate(plat.items()):
        ax.semilogy(r["losses"], color=f"C{i}", label=f"{name}: training")
        ax.semilogy(r["val_losses"], "--", color=f"C{i}", label=f"{name}: validation")
    ax2 = ax.twinx()
    ax2.plot(plat["reduce_on_plateau"]["scales"], "k:", lw=1, label="scale")
    ax2.set_ylabel("reduce_on_plateau scale")
    ax.set_title(f"reduce on plateau: full-batch Adam, lr {PLATEAU_LR}", fontsize=9)
    ax.set_xlabel("step")
    ax.legend(fontsize=7, loc="upper right")


def draw(settings, noise, stop, curr, plat) -> list[str]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    _draw_noise(axes[0, 0], noise)
    _draw_early_stopping(axes[0, 1], stop)
    _draw_curriculum(axes[1, 0], curr)
    _draw_plateau(axes[1, 1], plat)
    return [common.save_figure(fig, settings, "strategies")]


def noise_findings(noise) -> list[str]:
    findings = []
    base = noise[0.0]
    base_loss = float(base["losses"][:, -1].mean())
    for eta, r in noise.items():
        if eta == 0.0:
            continue
        loss = float(r["losses"][:, -1].mean())
        verdict = "lower" if loss < base_loss else "higher" if np.isfinite(loss) else "diverged"
        findings.append(
            f"Gradient noise eta={eta:g}: final training loss {common.fmt(loss)} vs "
            f"{common.fmt(base_loss)} without noise ({verdict})"
            f"; test accuracy {np.mean(r['test_accuracy']):.3f} vs "
            f"{np.mean(base['test_accuracy']):.3f}"
            f" (mean of {len(r['test_accuracy'])} seed(s))."
        )
    return findings


def early_stopping_finding(stop) -> str:
    if stop["stopped_epoch"] is not None:
        return (
            f"Early stopping stopped at epoch {stop['stopped_epoch']} and restored epoch "
            f"{stop['best_epoch']} (validation loss {stop['best_val_loss']:.3f}); test accuracy "
            f"{stop['test_accuracy_restored']:.3f} restored vs {stop['test_accuracy_last']:.3f} "
            f"after all {len(stop['val_losses'])} epochs (test loss "
            f"{stop['test_loss_restored']:.3f} vs {stop['test_loss_last']:.3f})."
        )
    return (
        f"Early stopping never triggered in {len(stop['val_losses'])} epochs (best epoch "
        f"{stop['best_epoch']})."
    )


def curriculum_finding(curr) -> str:
    c, s = curr["curriculum"], curr["shuffle"]
    return (
        f"Curriculum vs shuffled: final training loss {common.fmt(c['losses'][-1])} vs "
        f"{common.fmt(s['losses'][-1])}, test accuracy {c['test_accuracy']:.3f} vs "
        f"{s['test_accuracy']:.3f}; after the first epoch {common.fmt(c['losses'][0])} vs "
        f"{common.fmt(s['losses'][0])}."
    )


def plateau_numbers(plat):
    """Steps at which the scale was reduced; final validation losses, constant and reduced."""
    scales = plat["reduce_on_plateau"]["scales"]
    reductions = np.nonzero(np.diff(scales) < 0)[0] + 1
    return (
        reductions,
        plat["constant"]["val_losses"][-1],
        plat["reduce_on_plateau"]["val_losses"][-1],
    )


def plateau_finding(plat) -> str:
    reductions, const_final, rop_final = plateau_numbers(plat)
    scales = plat["reduce_on_plateau"]["scales"]
    return (
        f"Reduce on plateau: {len(reductions)} reductions"
        + (f" (first at step {reductions[0]})" if len(reductions) else "")
        + f", final scale {scales[-1]:.3g}; final validation loss {common.fmt(rop_final)} vs "
        f"{common.fmt(const_final)} at the constant rate."
    )


def headline_of(stop, plat) -> str:
    reductions, const_final, rop_final = plateau_numbers(plat)
    return (
        f"early stop at epoch {stop['stopped_epoch']} (best {stop['best_epoch']}), test acc "
        f"{stop['test_accuracy_restored']:.2f} vs {stop['test_accuracy_last']:.2f} at the end; "
        f"plateau: {len(reductions)} reductions, val loss {common.fmt(rop_final)} vs "
        f"{common.fmt(const_final)}"
    )


def run(settings: common.Settings) -> common.Result:
    data = datasets.load_digits(seed=settings.seed)
    if settings.mode == "smoke":
        data = data.subset(300, 100)
    (noise, stop, curr, plat), study_settings = run_parts(settings, data)
    results = {
        "gradient_noise": {str(k): v for k, v in noise.items()},
        "early_stopping": stop,
        "curriculum": curr,
        "reduce_on_plateau": plat,
    }
    data_files = [str(common.write_json(settings.out / "strategies.json", results))]
    figures = draw(settings, noise, stop, curr, plat)
    findings = [
        *noise_findings(noise),
        early_stopping_finding(stop),
        curriculum_finding(curr),
        plateau_finding(plat),
    ]
    common.write_summary(
        settings,
        "Strategies",
        intro=__doc__.split("Run:")[0],
        study_settings=study_settings,
        findings=findings,
        figures=figures,
        data=data_files,
    )
    headline = headline_of(stop, plat)
    return common.Result(NAME, "Strategies", findings, headline, figures, data_files)


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
