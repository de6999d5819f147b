"""The linear probe: fitted on one text, scored on another, beside a baseline."""

from __future__ import annotations

import numpy as np
import pytest

from lm.evaluation.probe import probe


def states(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)


def test_a_feature_spread_over_several_units_is_read_back_by_ridge():
    fit, held = states(400, 0), states(300, 1)
    target = lambda x: 2 * x[:, 0] - x[:, 3] + 0.5 * x[:, 5]  # noqa: E731
    result = probe(fit, target(fit), held, target(held), binary=False)
    assert result["model"] == "ridge" and result["metric"] == "r2"
    assert result["held_out"] > 0.99 and result["fit"] > 0.99 and result["baseline"] == 0.0
    unrelated = probe(fit, target(fit), held, states(300, 2)[:, 0], binary=False)
    assert unrelated["held_out"] < 0.05


def test_a_two_valued_feature_gets_accuracy_and_the_majority_baseline():
    fit, held = states(400, 0), states(300, 1)
    label = lambda x: (x[:, 1] + x[:, 2] > 0.8).astype(float)  # noqa: E731
    result = probe(fit, label(fit), held, label(held), binary=True)
    assert result["model"] == "logistic" and result["metric"] == "accuracy"
    assert result["held_out"] > 0.95
    # the commoner value on the fit text is 0: the baseline is the share of 0s held out
    assert result["baseline"] == pytest.approx(np.mean(label(held) == 0))
    assert result["baseline"] < result["held_out"]


def test_a_feature_with_one_value_has_no_probe():
    fit = states(50, 0)
    assert probe(fit, np.ones(50), fit, np.zeros(50), binary=True) is None
    assert probe(fit, np.full(50, 3.0), fit, np.arange(50.0), binary=False) is None
