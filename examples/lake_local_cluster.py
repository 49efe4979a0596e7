"""Fit a Parquet data lake on a local Dask cluster started from cluster_configs/local.yaml.

Writes a small lake (8 files, 2 row groups each, 100 000 rows) to a
temporary folder, or to ``--lake DIR`` (kept, e.g. for ``streammix fit``),
starts the LocalCluster described by ``cluster_configs/local.yaml`` (the
built-in default when the file is not there), fits three components and
prints the model.

Run: python examples/lake_local_cluster.py [--lake DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import make_table, show  # noqa: E402

import streammix  # noqa: E402
from streammix.config import default_cluster_config, load_cluster_config  # noqa: E402

N_FILES, ROWS_PER_FILE = 8, 12_500


def write_lake(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(N_FILES):
        pq.write_table(make_table(ROWS_PER_FILE, seed=i), folder / f"part-{i:03d}.parquet",
                       row_group_size=ROWS_PER_FILE // 2)


def fit(folder: Path) -> streammix.MixtureOfLinearRegressions:
    shipped = Path(__file__).resolve().parent.parent / "cluster_configs" / "local.yaml"
    config = load_cluster_config(shipped) if shipped.exists() else default_cluster_config()
    client, close = config.connect()
    try:
        print(f"Dask cluster: {client.scheduler.address}, "
              f"{len(client.scheduler_info(n_workers=-1)['workers'])} workers", flush=True)
        source = streammix.ParquetSource(folder, target="y", features=["x1", "x2"])
        model = streammix.MixtureOfLinearRegressions(
            3, random_state=0, init_sample_size=20_000,  # starting values from 20 000 rows
            engine=streammix.DaskEngine(client, **config.engine))
        return model.fit(source)
    finally:
        close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, help="write the lake here and keep it")
    args = parser.parse_args()
    if args.lake is not None:
        write_lake(args.lake)
        model = fit(args.lake)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            write_lake(Path(tmp) / "lake")
            model = fit(Path(tmp) / "lake")
    show(model)


if __name__ == "__main__":
    main()
