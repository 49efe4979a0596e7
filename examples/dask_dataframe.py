"""Fit a Dask DataFrame on a local Dask cluster.

The DataFrame is built lazily (``dask.dataframe.from_map``): each of its
partitions is generated on a worker when a pass needs it, so no data goes
through this process; only the partition indices go out and a few KB of
statistics come back per pass.

Run: python examples/dask_dataframe.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import dask.dataframe as dd
import pandas as pd
from distributed import Client, LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import make_rows, show  # noqa: E402

import streammix  # noqa: E402


def partition(seed: int) -> pd.DataFrame:
    return pd.DataFrame(make_rows(12_500, seed=1000 + seed))


def main() -> None:
    ddf = dd.from_map(partition, list(range(8)))
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        source = streammix.DaskSource(ddf, target="y", features=["x1", "x2"])
        model = streammix.MixtureOfLinearRegressions(
            3, random_state=0, init_sample_size=20_000,  # starting values from 20 000 rows
            engine=client)
        model.fit(source)
    show(model)


if __name__ == "__main__":
    main()
