"""A linear probe: how much of a feature the whole recurrent state holds, linearly.

A single unit may hold only part of a feature (or share it with others). The probe reads
every unit of every layer at once, standardised, and is fitted on the recorded text:
scikit-learn's ridge regression for a feature with many values (all of them in one fit, which
shares the one Gram matrix), logistic regression for one with two (odd or even line, inside
brackets or not). It is scored on held-out text, R² or accuracy, beside the score of the
baseline that reads nothing: R² 0, or the share of held-out tokens that have the value
commonest on the recorded text. A logistic fit that stops at its iteration cap says so
(``"converged": false``); its score is still that of the weights it reached.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

RIDGE_ALPHA = 1.0  # on standardised units and tens of thousands of tokens: barely a nudge
LOGISTIC_C = 0.1
LOGISTIC_ITERATIONS = 300


def probes(fit_x: np.ndarray, fit: dict[str, np.ndarray], held_x: np.ndarray,
           held: dict[str, np.ndarray], binary: dict[str, bool]
           ) -> dict[str, dict[str, Any] | None]:
    """A probe per feature of ``fit`` (fitted on ``fit_x``, scored on ``held_x``); None for a
    feature that takes one value only on the recorded text: there is nothing to learn."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(fit_x)
    fit_z, held_z = scaler.transform(fit_x), scaler.transform(held_x)
    varied = [name for name, values in fit.items() if np.ptp(values) > 0]
    result: dict[str, dict[str, Any] | None] = dict.fromkeys(fit)
    many = [name for name in varied if not binary[name]]
    if many:
        result.update(_ridge(fit_z, {n: fit[n] for n in many}, held_z, held))
    for name in varied:
        if binary[name]:
            result[name] = _logistic(fit_z, fit[name], held_z, held[name])
    return result


def _ridge(fit_z: np.ndarray, fit: dict[str, np.ndarray], held_z: np.ndarray,
           held: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    names = list(fit)
    targets = np.stack([fit[n] for n in names], axis=1)
    held_targets = np.stack([held[n] for n in names], axis=1)
    model = Ridge(alpha=RIDGE_ALPHA, solver="cholesky").fit(fit_z, targets)
    on_fit = r2_score(targets, model.predict(fit_z), multioutput="raw_values")
    on_held = r2_score(held_targets, model.predict(held_z), multioutput="raw_values")
    return {name: {"model": "ridge", "metric": "r2", "fit": float(on_fit[i]),
                   "held_out": float(on_held[i]), "baseline": 0.0}
            for i, name in enumerate(names)}


def _logistic(fit_z: np.ndarray, fit_y: np.ndarray, held_z: np.ndarray, held_y: np.ndarray
              ) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    labels, held_labels = fit_y.astype(np.int64), held_y.astype(np.int64)
    model = LogisticRegression(C=LOGISTIC_C, max_iter=LOGISTIC_ITERATIONS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(fit_z, labels)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    common = np.bincount(labels).argmax()
    return {"model": "logistic", "metric": "accuracy", "fit": float(model.score(fit_z, labels)),
            "held_out": float(model.score(held_z, held_labels)),
            "baseline": float(np.mean(held_labels == common)), "converged": converged}
