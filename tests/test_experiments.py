"""Smoke tests of the studies: tiny runs (``--smoke``) into a temporary folder."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import challenge, demo, valley, zoo


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("GRADOPT_NO_PROGRESS", "1")


def test_demo_smoke_writes_figures_numbers_and_summaries(tmp_path, capsys):
    figures = tmp_path / "figures"
    code = demo.main(
        ["--smoke", "--only", "valley,sweep", "--out", str(tmp_path), "--figures-to", str(figures)]
    )
    assert code == 0
    for study, files in {
        "valley": ["valley_gd.png", "valley_momentum_adam.png", "valley.csv", "summary.md"],
        "sweep": ["sweep.png", "sweep.csv", "timing.json", "summary.md"],
    }.items():
        for name in files:
            assert (tmp_path / study / name).stat().st_size > 0, (study, name)
        result = json.loads((tmp_path / study / "result.json").read_text())
        assert result["findings"] and result["headline"]
        summary = (tmp_path / study / "summary.md").read_text()
        assert "## Findings (measured in this run)" in summary and "| jax |" in summary
    assert (figures / "valley_gd.png").exists() and (figures / "sweep.png").exists()
    table = (tmp_path / "summary.md").read_text()
    assert "| valley |" in table and "| sweep |" in table
    out = capsys.readouterr().out
    assert "headline (measured)" in out

    # The regimes on the valley, measured from the run itself.
    summary = (tmp_path / "valley" / "summary.md").read_text()
    assert "GD diverges: lr = 0.053." in summary
    assert "GD oscillates: lr = 0.04, 0.05." in summary


def test_demo_rejects_unknown_study(tmp_path):
    assert demo.main(["--smoke", "--only", "nope", "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize(
    "module", ["valley", "gallery", "batching", "challenge", "strategies", "sweep", "schedules"]
)
def test_help(module, capsys):
    study = __import__(f"experiments.{module}", fromlist=["main"])
    with pytest.raises(SystemExit) as exit_info:
        study.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "--seed" in out and "--out" in out


def test_valley_classify():
    steps = np.arange(6)
    slow = np.stack([-9.0 + steps, 0.5**steps], axis=1)
    zigzag = np.stack([-9.0 + steps, (-0.9) ** steps], axis=1)
    assert valley.classify(slow, valley.loss_fn(slow.T)) == "slow"
    assert valley.classify(zigzag, valley.loss_fn(zigzag.T)) == "oscillates"
    grow = np.stack([-9.0 + 0 * steps, (-1.5) ** steps], axis=1)
    assert valley.classify(grow, valley.loss_fn(grow.T)) == "diverges"


def test_batch_norm_train_and_eval_modes():
    params, stats = challenge.init(jax.random.key(0), 4, 3)
    x = jnp.asarray(np.random.default_rng(0).normal(3.0, 2.0, (16, 4)), jnp.float32)
    _, new_stats = challenge.apply(params, stats, x, bn=True, train=True)
    h = np.asarray(x @ params["w1"] + params["b1"][None, :], np.float64)
    m = challenge.BN_MOMENTUM
    np.testing.assert_allclose(new_stats["mean"], (1 - m) * h.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        new_stats["var"], m + (1 - m) * h.var(axis=0, ddof=1), rtol=1e-4, atol=1e-5
    )
    # Evaluation uses the running averages and leaves them unchanged.
    logits, same = challenge.apply(params, new_stats, x, bn=True, train=False)
    assert same is new_stats
    normed = (h - np.asarray(new_stats["mean"])[None, :]) / np.sqrt(
        np.asarray(new_stats["var"])[None, :] + challenge.BN_EPS
    )
    hidden = np.maximum(normed, 0.0)
    expected = hidden @ np.asarray(params["w2"], np.float64) + np.asarray(params["b2"])[None, :]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # the zoo runs in `make demo`; this smoke test is opt-in (make test-all)
def test_zoo_smoke_writes_the_table_and_both_figures(tmp_path):
    result = zoo.main(["--smoke", "--out", str(tmp_path)])
    for name in ("zoo.png", "zoo_curves.png", "zoo.csv", "targets.json", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    summary = (tmp_path / "summary.md").read_text()
    assert "| adamw |" in summary and "mean rank" in summary
    assert "char transformer" in result.headline or "tasks" in result.headline


def test_zoo_scores_steps_to_target_and_best_learning_rate():
    curves = {"a": np.asarray([[3.0, 2.0, 1.0], [3.0, np.nan, np.nan], [3.0, 1.5, 0.5]])}
    best = zoo.score(curves, np.asarray([0.1, 1.0, 0.01]))["a"]
    assert best["lr"] == 0.01 and best["final"] == 0.5 and best["index"] == 2
    assert zoo.steps_to(best["curve"], 1.5) == 1
    assert zoo.steps_to(best["curve"], 0.1) is None


def test_zoo_text_is_on_this_machine():
    text, _ = zoo.load_text()
    windows, vocab = zoo.char_windows(text, 4, 16, seed=0)
    assert windows.shape == (4, 17) and 10 < vocab < 256
