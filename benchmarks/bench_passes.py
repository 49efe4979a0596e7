"""Fewer passes over a Parquet lake: SQUAREM, shared-scan restarts, k selection.

Writes a lake with pyarrow (``--rows`` rows, d = 6 features, m = 3
overlapping components, signal-to-noise about 1), then measures side by side
in one run:

1. passes and wall time for plain EM and SQUAREM to reach the same
   log-likelihood (within 1e-3 of the best either reached), from the same
   starting values;
2. wall time of ``n_init=10`` against ``n_init=1``;
3. wall time of ``select_components(k=1..6)`` against a single fit at k=3.

Not part of the test suite.  Run, e.g.::

    PYTHONPATH=. python benchmarks/bench_passes.py --rows 2000000
"""

from __future__ import annotations

import argparse
import contextlib
import posixpath
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streammix import MixtureOfLinearRegressions, select_components
from streammix.core.chunk import Chunk
from streammix.engines.inprocess import InProcessEngine

D, M = 6, 3
FEATURES = [f"x{k}" for k in range(D)]


def write_lake(root: Path, rows: int, files: int, row_group: int, seed: int) -> None:
    """Rows from a known overlapping mixture, in ``files`` Parquet files."""
    rng = np.random.default_rng(seed)
    slopes = rng.normal(size=(M, D))
    slopes /= np.linalg.norm(slopes, axis=1, keepdims=True)  # ‖a_j‖ = σ = 1: SNR 1
    intercepts = np.array([-1.0, 0.0, 1.0])
    weights = np.array([0.3, 0.3, 0.4])
    per_file = -(-rows // files)
    for f in range(files):
        n = min(per_file, rows - f * per_file)
        X = rng.normal(size=(n, D))
        z = rng.choice(M, size=n, p=weights)
        y = intercepts[z] + np.einsum("ij,ij->i", X, slopes[z]) + rng.normal(size=n)
        table = pa.table({**{c: X[:, k] for k, c in enumerate(FEATURES)}, "y": y})
        pq.write_table(table, root / f"part-{f:03d}.parquet", row_group_size=row_group)


class LakeSource:
    """A tiny Parquet reader: one chunk per row group (path, index).

    With ``storage_options`` the paths are ``bucket/key`` names read through
    s3fs (each read re-opens the object, as a worker would).
    """

    def __init__(self, root, storage_options=None):
        self.root = str(root)
        self.storage_options = storage_options
        if storage_options is None:
            self.paths = sorted(str(p) for p in Path(root).glob("*.parquet"))
        else:
            self.paths = sorted(self._fs().glob(f"{root}/*.parquet"))
        self.feature_names = list(FEATURES)
        self.n_features = D

    def _fs(self):
        import s3fs
        return s3fs.S3FileSystem(**self.storage_options)

    def _open(self, path):
        if self.storage_options is None:
            return pq.ParquetFile(path)
        return pq.ParquetFile(self._fs().open(path, "rb"))

    def plan(self):
        return sorted((p, g) for p in self.paths
                      for g in range(self._open(p).metadata.num_row_groups))

    def read(self, descriptor) -> Chunk:
        path, group = descriptor
        pf = self._open(path)
        table = pf.read_row_group(group, columns=FEATURES + ["y"])
        X = np.column_stack([table.column(c).to_numpy() for c in FEATURES])
        y = table.column("y").to_numpy()
        first = sum(pf.metadata.row_group(k).num_rows for k in range(group))
        # Rows are named by the file's path relative to the lake (as ParquetSource
        # does): the starting sample, and so the fit, then do not depend on the
        # temporary folder the lake was written to.
        return Chunk(X, y, np.ones_like(y), posixpath.relpath(path, self.root), first)


class TimedEngine(InProcessEngine):
    """Records the time at the end of each pass."""

    def __init__(self):
        super().__init__()
        self.stamps: list[float] = []

    def map_reduce(self, source, func, zero):
        out = super().map_reduce(source, func, zero)
        self.stamps.append(time.perf_counter())
        return out


def timed_fit(source, **kw):
    engine = TimedEngine()
    model = MixtureOfLinearRegressions(engine=engine, **kw)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(source)
    return model, engine.stamps, t0, time.perf_counter() - t0


def bench_squarem(source, seed, tol):
    kw = dict(n_components=M, random_state=seed, tol=tol, max_iter=20000, n_init=1)
    runs = {name: timed_fit(source, accelerate=acc, **kw)
            for name, acc in (("plain EM", None), ("SQUAREM", "squarem"))}
    target = max(model.loglik_ for model, *_ in runs.values())
    print(f"\n1. passes to reach loglik >= {target:.6f} - 1e-3 "
          f"(from the same start; pass 0 included)")
    print(f"   {'method':<10} {'passes':>7} {'wall s':>8} {'final loglik':>16} "
          f"{'total passes':>13}")
    out = {}
    for name, (model, stamps, t0, _) in runs.items():
        ok = [i for i, h in enumerate(model.history_)
              if h["loglik"] >= target - 1e-3 and h.get("step") != "extrapolated"]
        i = ok[0]
        passes, secs = i + 2, stamps[i + 1] - t0  # stamps[0] is pass 0 (profile)
        out[name] = (passes, secs)
        print(f"   {name:<10} {passes:>7d} {secs:>8.2f} {model.loglik_:>16.6f} "
              f"{model.n_passes_:>13d}")
    ratio = out["SQUAREM"][0] / out["plain EM"][0]
    print(f"   SQUAREM / plain EM: passes {ratio:.3f} (target <= 1/3), "
          f"wall {out['SQUAREM'][1] / out['plain EM'][1]:.3f}")


def bench_restarts(source, seed, tol, accelerate):
    kw = dict(n_components=M, random_state=seed, tol=tol, max_iter=20000,
              accelerate=accelerate)
    one, *_, wall1 = timed_fit(source, n_init=1, **kw)
    ten, *_, wall10 = timed_fit(source, n_init=10, **kw)
    print(f"\n2. restarts ({accelerate or 'plain EM'}): n_init=1 {wall1:.2f} s "
          f"({one.n_passes_} passes, loglik {one.loglik_:.4f}); "
          f"n_init=10 {wall10:.2f} s ({ten.n_passes_} passes, loglik {ten.loglik_:.4f})")
    print(f"   ratio {wall10 / wall1:.2f} (target <= 2.5)")


def bench_select(source, seed, tol, accelerate):
    kw = dict(random_state=seed, tol=tol, max_iter=20000, accelerate=accelerate)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = MixtureOfLinearRegressions(M, **kw).fit(source)
    wall1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_components(source, k=range(1, 7), **kw)
    wall6 = time.perf_counter() - t0
    print(f"\n3. k selection ({accelerate or 'plain EM'}): k=3 alone {wall1:.2f} s "
          f"({single.n_passes_} passes); k=1..6 {wall6:.2f} s ({result.n_passes} passes), "
          f"BIC chose k={result.best_k}")
    print(f"   ratio {wall6 / wall1:.2f} (target <= 3)")
    print("   " + str(result).replace("\n", "\n   "))


@contextlib.contextmanager
def _maybe_s3(wanted: bool):
    """A moto S3 server on 127.0.0.1 and s3fs storage options for it (dummy keys)."""
    if not wanted:
        yield None
        return
    import logging
    import os

    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench-key")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield {"key": "bench-key", "secret": "bench-secret",
               "client_kwargs": {"endpoint_url": f"http://{host}:{port}",
                                 "region_name": "eu-west-1"}}
    finally:
        server.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--row-group", type=int, default=65_536)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="stopping tolerance of parts 2 and 3 (part 1 uses 1e-6)")
    ap.add_argument("--accelerate", default="squarem", choices=["squarem", "none"],
                    help="method of parts 2 and 3")
    ap.add_argument("--parts", default="123")
    ap.add_argument("--dir", default=None, help="where to write the lake (default: a temp dir)")
    ap.add_argument("--s3", action="store_true",
                    help="put the lake in a bucket of a local moto S3 server (127.0.0.1) and "
                         "read it through s3fs")
    args = ap.parse_args(argv)
    acc = None if args.accelerate == "none" else args.accelerate
    with tempfile.TemporaryDirectory() as tmp, _maybe_s3(args.s3) as storage:
        root = Path(args.dir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        write_lake(root, args.rows, args.files, args.row_group, args.seed)
        if storage is None:
            source = LakeSource(root)
        else:
            import s3fs
            fs = s3fs.S3FileSystem(**storage)
            fs.mkdir("bench")
            fs.put(str(root), "bench/lake", recursive=True)
            source = LakeSource("bench/lake", storage)
        where = "local disk" if storage is None else "moto S3 on 127.0.0.1"
        print(f"lake ({where}): {args.rows} rows, {len(source.plan())} row groups in "
              f"{args.files} files, written in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        for d in source.plan():
            source.read(d)
        print(f"bare pyarrow scan of the lake: {time.perf_counter() - t0:.3f} s per pass")
        if "1" in args.parts:
            bench_squarem(source, args.seed, 1e-6)
        if "2" in args.parts:
            bench_restarts(source, args.seed, args.tol, acc)
        if "3" in args.parts:
            bench_select(source, args.seed, args.tol, acc)


if __name__ == "__main__":
    main()
