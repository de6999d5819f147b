"""The linear probes: fitted on one text, scored on another, beside a baseline."""

from __future__ import annotations

import numpy as np
import pytest

from lm.evaluation import probe as probe_module
from lm.evaluation.probe import probes


def states(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)


def spread(x: np.ndarray) -> np.ndarray:
    return 2 * x[:, 0] - x[:, 3] + 0.5 * x[:, 5]


def label(x: np.ndarray) -> np.ndarray:
    return (x[:, 1] + x[:, 2] > 0.8).astype(float)


def test_features_spread_over_several_units_are_read_back_by_one_ridge_fit():
    fit, held = states(400, 0), states(300, 1)
    noise = states(400, 2)[:, 0]
    result = probes(fit, {"a": spread(fit), "b": noise}, held,
                    {"a": spread(held), "b": states(300, 3)[:, 0]}, {"a": False, "b": False})
    assert result["a"]["model"] == "ridge" and result["a"]["metric"] == "r2"
    assert result["a"]["held_out"] > 0.99 and result["a"]["fit"] > 0.99
    assert result["a"]["baseline"] == 0.0
    assert result["b"]["held_out"] < 0.05  # noise: nothing to read, whatever the fit found


def test_a_two_valued_feature_gets_accuracy_and_the_majority_baseline():
    fit, held = states(400, 0), states(300, 1)
    result = probes(fit, {"odd": label(fit)}, held, {"odd": label(held)}, {"odd": True})["odd"]
    assert result["model"] == "logistic" and result["metric"] == "accuracy"
    assert result["held_out"] > 0.95 and result["converged"] is True
    # the commoner value on the fit text is 0: the baseline is the share of 0s held out
    assert result["baseline"] == pytest.approx(np.mean(label(held) == 0))
    assert result["baseline"] < result["held_out"]


def test_a_fit_stopped_by_its_cap_says_it_did_not_converge(monkeypatch):
    monkeypatch.setattr(probe_module, "LOGISTIC_ITERATIONS", 1)
    fit, held = states(400, 0), states(300, 1)
    result = probes(fit, {"odd": label(fit)}, held, {"odd": label(held)}, {"odd": True})
    assert result["odd"]["converged"] is False


def test_a_feature_with_one_value_has_no_probe():
    fit = states(50, 0)
    result = probes(fit, {"same": np.ones(50), "flat": np.full(50, 3.0), "a": spread(fit)},
                    fit, {"same": np.zeros(50), "flat": np.arange(50.0), "a": spread(fit)},
                    {"same": True, "flat": False, "a": False})
    assert result["same"] is None and result["flat"] is None
    assert result["a"]["held_out"] > 0.99
