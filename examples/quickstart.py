"""Fit a mixture of three regression lines to synthetic data and print the model.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import numpy as np

import streammix


def main() -> None:
    rng = np.random.default_rng(42)
    n = 100_000
    X = rng.uniform(-5, 5, size=(n, 2))
    z = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    coef = np.array([[2.0, -1.0], [-1.0, 0.5], [0.0, 3.0]])
    intercept = np.array([1.0, -4.0, 6.0])
    sigma = np.array([1.0, 0.5, 2.0])
    y = (X * coef[z]).sum(1) + intercept[z] + rng.normal(size=n) * sigma[z]

    model = streammix.MixtureOfLinearRegressions(3, random_state=0, chunk_rows=20_000)
    model.fit(X, y)
    print(model.report())


if __name__ == "__main__":
    main()
