"""gradopt.EarlyStopping against keras.callbacks.EarlyStopping (recorded, see fixtures)."""

import json
import math
import pathlib

import pytest

import gradopt

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "early_stopping.json"
CASES = json.loads(FIXTURE.read_text())["cases"]


def _float(x):
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(x, x)


def _same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_recorded_keras(case):
    stopper = gradopt.EarlyStopping(case["monitor"], **case["kwargs"])
    flags, bests = [], []
    for epoch, value in enumerate(case["values"]):
        params = {"w": epoch}
        flags.append(stopper.update(_float(value), params))
        bests.append(stopper.best)
        if flags[-1]:
            break
    assert flags == case["stop_flags"]
    want_bests = [None if b is None else _float(b) for b in case["best_after_epoch"]]
    assert all(_same(a, b) for a, b in zip(bests, want_bests, strict=True)), (bests, want_bests)
    assert stopper.stopped_epoch == case["stopped_epoch"]
    assert stopper.best_epoch == case["best_epoch"]
    if case["kwargs"].get("restore_best_weights"):
        assert stopper.best_params == {"w": case["restored_epoch"]}
    else:
        assert stopper.best_params is None


def test_fixture_covers_every_setting():
    used = set().union(*(c["kwargs"] for c in CASES))
    assert {
        "patience",
        "min_delta",
        "mode",
        "baseline",
        "restore_best_weights",
        "start_from_epoch",
    } <= used
    assert any(c["stopped_epoch"] == 0 for c in CASES)  # some never stop
    assert len(CASES) >= 10


def test_reset_and_repr():
    stopper = gradopt.EarlyStopping(patience=0, mode="min")
    assert not stopper.update(1.0)
    assert stopper.update(2.0)
    assert "best=1" in repr(stopper)
    stopper.reset()
    assert stopper.best is None and stopper.epoch == 0 and stopper.stopped_epoch == 0
    assert not stopper.update(5.0)


def test_accepts_jax_scalars():
    import jax.numpy as jnp

    stopper = gradopt.EarlyStopping(patience=2, mode="max")
    assert not stopper.update(jnp.float32(0.5))
    assert not stopper.update(jnp.float32(0.25))
    assert stopper.update(jnp.float32(0.25))
    assert stopper.best == 0.5


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"patience": -1}, ValueError),
        ({"patience": 1.5}, ValueError),
        ({"start_from_epoch": -2}, ValueError),
        ({"mode": "biggest"}, ValueError),
        ({"monitor": "accuracy"}, ValueError),  # auto cannot infer the direction
        ({"restore_best_weights": 1}, TypeError),
        ({"min_delta": "0.1"}, TypeError),
        ({"monitor": 3}, TypeError),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match="gradopt.EarlyStopping"):
        gradopt.EarlyStopping(**kwargs)
