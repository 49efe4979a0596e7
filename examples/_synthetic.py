"""Shared by the examples: a known mixture of three regression lines, written as Parquet."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_INTERCEPT = np.array([1.0, -4.0, 6.0])
TRUE_COEF = np.array([[2.0, -1.0], [-1.0, 0.5], [0.0, 3.0]])
TRUE_SIGMA = np.array([1.0, 0.5, 2.0])


def make_rows(n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` rows (x1, x2, y) drawn from the true mixture, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-5, 5, size=(n, 2))
    z = rng.choice(3, size=n, p=TRUE_WEIGHTS)
    y = (X * TRUE_COEF[z]).sum(1) + TRUE_INTERCEPT[z] + rng.normal(size=n) * TRUE_SIGMA[z]
    return {"x1": X[:, 0], "x2": X[:, 1], "y": y}


def make_table(n: int, seed: int) -> pa.Table:
    return pa.table(make_rows(n, seed))


def show(model) -> None:
    """Print the model and the fitted weights next to the true ones."""
    print(model.report())
    print()
    print("true weights:  ", " ".join(f"{w:.4f}" for w in TRUE_WEIGHTS))
    print("fitted weights:", " ".join(f"{w:.4f}" for w in model.weights_))
