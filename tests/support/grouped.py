"""Grouped data for the tests of grouped lakes: 5-15 rows a group, two regression lines."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Starting values shared by the lake and in-memory fits of these tests.
INIT = dict(weights=[0.6, 0.4], coef=[[0.6], [0.2]], intercept=[3.0, 5.0], sigma=[4.0, 4.0])


def grouped_frame(seed: int = 3, n_groups: int = 120) -> pd.DataFrame:
    """Columns id (``g000``, ...), x, y; rows stored by group."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 16, n_groups)
    ids = np.repeat(np.arange(n_groups), sizes)
    cls = rng.integers(0, 2, n_groups)[ids]
    x = rng.uniform(0, 10, ids.size)
    y = np.where(cls == 0, 1 + 2 * x, 8 - x) + rng.normal(0, 1.5, ids.size)
    return pd.DataFrame({"id": [f"g{i:03d}" for i in ids], "x": x, "y": y})
