"""Recency, frequency and monetary value models: pure Python, no ORM.

Churn risk is a logistic regression, predicted value a linear regression, both on
log1p(recency days), log1p(frequency) and log1p(monetary) with an intercept, fitted by Newton's
method / the normal equations on standardised features (four coefficients: a 4x4 system). Quality
is measured on a held-out share of the sample: AUC and Brier score for churn, R² and mean absolute
error for value, beside the baseline a model must beat (the base rate, the mean).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

FEATURES = ("recency", "frequency", "monetary")


@dataclass(frozen=True)
class Row:
    recency_days: float  # days since the last event before the cut-off (large when none)
    frequency: float  # events in the year before the cut-off
    monetary: float  # revenue before the cut-off
    churned: bool = False  # no event in the horizon after the cut-off
    future_value: float = 0.0  # revenue in the horizon after the cut-off


def features(row: Row) -> list[float]:
    return [
        math.log1p(max(row.recency_days, 0.0)),
        math.log1p(max(row.frequency, 0.0)),
        math.log1p(max(row.monetary, 0.0)),
    ]


@dataclass(frozen=True)
class Fit:
    kind: str  # "churn" or "value"
    coefficients: tuple[float, ...]  # intercept first, on standardised features
    means: tuple[float, ...]
    scales: tuple[float, ...]
    metrics: dict

    def predict(self, row: Row) -> float:
        z = [(x - m) / s for x, m, s in zip(features(row), self.means, self.scales, strict=True)]
        linear = self.coefficients[0] + sum(c * x for c, x in zip(self.coefficients[1:], z, strict=True))
        if self.kind == "churn":
            return 1.0 / (1.0 + math.exp(-max(min(linear, 50.0), -50.0)))
        return max(linear, 0.0)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "features": ["intercept", *FEATURES],
            "coefficients": list(self.coefficients),
            "means": list(self.means),
            "scales": list(self.scales),
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Fit:
        return cls(
            kind=data["kind"],
            coefficients=tuple(data["coefficients"]),
            means=tuple(data["means"]),
            scales=tuple(data["scales"]),
            metrics=data.get("metrics", {}),
        )


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting and a small ridge, for a tiny system."""
    size = len(vector)
    a = [row[:] + [vector[i]] for i, row in enumerate(matrix)]
    for i in range(size):
        a[i][i] += 1e-6
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(a[r][column]))
        a[column], a[pivot] = a[pivot], a[column]
        for r in range(size):
            if r != column and a[column][column]:
                factor = a[r][column] / a[column][column]
                a[r] = [x - factor * y for x, y in zip(a[r], a[column], strict=True)]
    return [a[i][size] / a[i][i] if a[i][i] else 0.0 for i in range(size)]


def _standardise(rows: list[Row]) -> tuple[list[list[float]], tuple, tuple]:
    raw = [features(row) for row in rows]
    means = tuple(sum(x[j] for x in raw) / len(raw) for j in range(len(FEATURES)))
    scales = tuple(math.sqrt(sum((x[j] - means[j]) ** 2 for x in raw) / len(raw)) or 1.0 for j in range(len(FEATURES)))
    return [[1.0, *((x[j] - means[j]) / scales[j] for j in range(len(FEATURES)))] for x in raw], means, scales


def _logistic(design: list[list[float]], labels: list[float], iterations: int = 25) -> list[float]:
    beta = [0.0] * len(design[0])
    for _ in range(iterations):
        gradient = [0.0] * len(beta)
        hessian = [[0.0] * len(beta) for _ in beta]
        for x, y in zip(design, labels, strict=True):
            p = 1.0 / (1.0 + math.exp(-max(min(sum(b * v for b, v in zip(beta, x, strict=True)), 50.0), -50.0)))
            w = p * (1 - p)
            for i, xi in enumerate(x):
                gradient[i] += (y - p) * xi
                for j, xj in enumerate(x):
                    hessian[i][j] += w * xi * xj
        step = _solve(hessian, gradient)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-8:
            break
    return beta


def _linear(design: list[list[float]], targets: list[float]) -> list[float]:
    size = len(design[0])
    xtx = [[sum(x[i] * x[j] for x in design) for j in range(size)] for i in range(size)]
    xty = [sum(x[i] * y for x, y in zip(design, targets, strict=True)) for i in range(size)]
    return _solve(xtx, xty)


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """Area under the ROC curve by ranks (ties averaged); None without both classes."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(rank for rank, label in zip(ranks, labels, strict=True) if label)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _split(rows: list[Row], seed: int) -> tuple[list[Row], list[Row]]:
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    cut = max(1, int(len(shuffled) * 0.7))
    return shuffled[:cut], shuffled[cut:] or shuffled[:1]


def fit_churn(rows: list[Row], *, seed: int = 7) -> Fit:
    train, test = _split(rows, seed)
    design, means, scales = _standardise(train)
    beta = _logistic(design, [1.0 if row.churned else 0.0 for row in train])
    fit = Fit("churn", tuple(beta), means, scales, {})
    scores = [fit.predict(row) for row in test]
    labels = [row.churned for row in test]
    base_rate = sum(row.churned for row in train) / len(train)
    metrics = {
        "sample": len(rows),
        "held_out": len(test),
        "auc": auc(scores, labels),
        "brier": sum((s - y) ** 2 for s, y in zip(scores, labels, strict=True)) / len(test),
        "brier_base_rate": sum((base_rate - y) ** 2 for y in labels) / len(test),
        "churn_rate": base_rate,
    }
    return Fit("churn", tuple(beta), means, scales, metrics)


def fit_value(rows: list[Row], *, seed: int = 7) -> Fit:
    train, test = _split(rows, seed)
    design, means, scales = _standardise(train)
    beta = _linear(design, [row.future_value for row in train])
    fit = Fit("value", tuple(beta), means, scales, {})
    predictions = [fit.predict(row) for row in test]
    actual = [row.future_value for row in test]
    mean = sum(row.future_value for row in train) / len(train)
    total = sum((y - mean) ** 2 for y in actual)
    residual = sum((y - p) ** 2 for y, p in zip(actual, predictions, strict=True))
    metrics = {
        "sample": len(rows),
        "held_out": len(test),
        "r2": 1 - residual / total if total else None,
        "mae": sum(abs(y - p) for y, p in zip(actual, predictions, strict=True)) / len(test),
        "mae_mean": sum(abs(y - mean) for y in actual) / len(test),
        "mean_value": mean,
    }
    return Fit("value", tuple(beta), means, scales, metrics)
