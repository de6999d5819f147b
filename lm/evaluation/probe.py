"""A linear probe: how much of a feature the whole recurrent state holds, linearly.

A single unit may hold only part of a feature (or share it with others). The probe reads
every unit of every layer at once, standardised, and is fitted on the recorded text:
scikit-learn's ridge regression (its penalty picked by efficient leave-one-out) for a feature
with many values, logistic regression for one with two (odd or even line, inside brackets or
not). It is scored on held-out text, R² or accuracy, beside the score of the baseline that
reads nothing: R² 0, or the share of held-out tokens that have the value commonest on the
recorded text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
LOGISTIC_ITERATIONS = 500


def probe(fit_x: np.ndarray, fit_y: np.ndarray, held_x: np.ndarray, held_y: np.ndarray,
          binary: bool) -> dict[str, Any] | None:
    """Fit on (``fit_x``, ``fit_y``), score on the held-out pair; None when the feature takes
    one value only on the recorded text (there is nothing to learn)."""
    if np.ptp(fit_y) == 0:
        return None
    return (_logistic if binary else _ridge)(fit_x, fit_y, held_x, held_y)


def _ridge(fit_x: np.ndarray, fit_y: np.ndarray, held_x: np.ndarray, held_y: np.ndarray
           ) -> dict[str, Any]:
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(fit_x, fit_y)
    return {"model": "ridge", "metric": "r2", "fit": float(model.score(fit_x, fit_y)),
            "held_out": float(model.score(held_x, held_y)), "baseline": 0.0,
            "alpha": float(model[-1].alpha_)}


def _logistic(fit_x: np.ndarray, fit_y: np.ndarray, held_x: np.ndarray, held_y: np.ndarray
              ) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = fit_y.astype(np.int64)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=LOGISTIC_ITERATIONS))
    model.fit(fit_x, labels)
    common = np.bincount(labels).argmax()
    return {"model": "logistic", "metric": "accuracy",
            "fit": float(model.score(fit_x, labels)),
            "held_out": float(model.score(held_x, held_y.astype(np.int64))),
            "baseline": float(np.mean(held_y.astype(np.int64) == common))}
