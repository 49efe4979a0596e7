"""Fit a Parquet lake read from an S3 bucket through an ``s3://`` URL.

Starts a local S3-compatible server (moto) on 127.0.0.1, uploads a small
lake to a bucket, and fits it by URL.  Against real S3 (or MinIO, Ceph...)
only the URL and ``storage_options`` change; credentials come from the
environment as usual, never from code or config files.

Needs: pip install "streammix[s3]" "moto[server]"
Run:   python examples/lake_s3.py
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import make_table, show  # noqa: E402

import streammix  # noqa: E402

BUCKET = "streammix-demo"


def main() -> None:
    import s3fs
    from moto.server import ThreadedMotoServer

    # moto accepts any credentials; these dummy values only reach the local server
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        storage_options = {"client_kwargs": {"endpoint_url": endpoint}}
        fs = s3fs.S3FileSystem(**storage_options)
        fs.mkdir(BUCKET)
        for i in range(4):
            pq.write_table(make_table(25_000, seed=100 + i),
                           f"{BUCKET}/lake/part-{i:03d}.parquet", filesystem=fs,
                           row_group_size=12_500)
        print(f"uploaded {len(fs.ls(f'{BUCKET}/lake'))} files to s3://{BUCKET}/lake "
              f"(S3 endpoint {endpoint})", flush=True)
        source = streammix.ParquetSource(f"s3://{BUCKET}/lake", target="y",
                                         features=["x1", "x2"],
                                         storage_options=storage_options)
        model = streammix.MixtureOfLinearRegressions(
            3, random_state=0, init_sample_size=20_000,  # starting values from 20 000 rows
            engine=streammix.InProcessEngine(n_threads=4))
        model.fit(source)
    finally:
        server.stop()
    show(model)


if __name__ == "__main__":
    main()
