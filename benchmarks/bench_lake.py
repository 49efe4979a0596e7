"""One EM pass over a Parquet lake, against pyarrow's own scan of the same columns.

Builds a lake (default 4M rows, d = 10 coefficients with the intercept,
m = 4 components, row groups of 131072 rows), then times, in rounds that
run every stage once each (so that the load of a shared machine falls on
all of them alike):

* pyarrow's multi-threaded dataset scan of the columns into float64 numpy
  matrices (all cores): the unit, ``x thr.``;
* a bare pyarrow scan on one thread (``x 1 thr.``), and the same with the
  chunks read by a pool of one thread per CPU;
* one streammix EM iteration (E-step pass + M-step) in-process, with the
  default threads (one per CPU) and on one thread, and the profiling pass
  (pass 0 of a fit: counts, the reservoir sample, the moments);
* the same on a 2-worker LocalCluster (2 workers x 1 thread: the same two
  cores as the threaded scan), the EM pass and the profiling pass also with
  a ``+`` task per sum of the reduction tree (DaskEngine's before), and with
  ``cache`` (the first pass reads and keeps the chunks, later ones only
  compute);

and prints medians over the rounds (the pyarrow scans timed warm, each
after an untimed run of its own), the median of each round's ratio to
the threaded scan, the peak RSS, and (``--breakdown``) where the CPU time
of a one-thread pass goes: pyarrow's decoding, the rest of
``ParquetSource.read`` (float64 columns, checks, the feature matrix), and
the E-step.

    python benchmarks/bench_lake.py --rows 1000000
    python benchmarks/bench_lake.py --rows 40000000 --dir /big/disk/lake
"""


from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from alternate import library_root, run_alternating  # noqa: E402

HERE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, library_root(sys.argv[1:], HERE))  # --library: another checkout's streammix

from streammix import DaskEngine, ParquetSource  # noqa: E402
from streammix.algorithms.start.profile import Profile, ProfileTask, key_floor  # noqa: E402
from streammix.algorithms.tasks import EStepTask  # noqa: E402
from streammix.core.mstep import MStepOptions, mstep  # noqa: E402
from streammix.core.params import MixtureParams  # noqa: E402
from streammix.core.stats import SuffStats  # noqa: E402
from streammix.engines.inprocess import InProcessEngine, default_threads  # noqa: E402


def truth(d: int, m: int, seed: int = 0) -> MixtureParams:
    rng = np.random.default_rng(seed)
    beta = rng.normal(scale=2.0, size=(m, d))
    return MixtureParams(np.full(m, 1.0 / m), beta, rng.uniform(0.3, 1.0, size=m) ** 2)


def build_lake(path: str, rows: int, params: MixtureParams, row_group: int,
               rows_per_file: int, seed: int = 1) -> None:
    """Write the lake one row group at a time (bounded memory)."""
    rng = np.random.default_rng(seed)
    d = params.n_coef - 1
    names = [f"x{k}" for k in range(1, d + 1)]
    os.makedirs(path, exist_ok=True)
    done, file_no = 0, 0
    while done < rows:
        in_file = min(rows_per_file, rows - done)
        writer = None
        written = 0
        while written < in_file:
            n = min(row_group, in_file - written)
            X = rng.normal(size=(n, d))
            z = rng.choice(params.n_components, size=n, p=params.weights)
            beta = params.beta[z]
            y = beta[:, 0] + np.einsum("ij,ij->i", X, beta[:, 1:]) \
                + rng.normal(size=n) * np.sqrt(params.sigma2[z])
            table = pa.table({**{name: X[:, k] for k, name in enumerate(names)}, "y": y})
            if writer is None:
                writer = pq.ParquetWriter(os.path.join(path, f"part-{file_no:04d}.parquet"),
                                          table.schema)
            writer.write_table(table, row_group_size=row_group)
            written += n
        writer.close()
        done += in_file
        file_no += 1


def scan_numpy(source: ParquetSource) -> int:
    """The floor: read every planned row group's columns into a float64 matrix."""
    cols = source.columns
    total = 0
    for piece in source.plan():
        table = pq.ParquetFile(piece.path).read_row_groups(list(piece.row_groups),
                                                           columns=cols, use_threads=False)
        M = np.empty((table.num_rows, len(cols)))
        for k, name in enumerate(cols):
            M[:, k] = table.column(name).to_numpy()
        total += M.shape[0]
    return total


def scan_pool(source: ParquetSource, threads: int) -> int:
    """:func:`scan_numpy` with the chunks read by ``threads`` threads at a time
    (each read on one thread, as the in-process engine's reads are)."""
    from concurrent.futures import ThreadPoolExecutor
    cols = source.columns

    def read(piece):
        table = pq.ParquetFile(piece.path).read_row_groups(list(piece.row_groups),
                                                           columns=cols, use_threads=False)
        M = np.empty((table.num_rows, len(cols)))
        for k, name in enumerate(cols):
            M[:, k] = table.column(name).to_numpy()
        return M.shape[0]

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(read, source.plan()))


def scan_threaded(path: str, cols: list[str]) -> int:
    total = 0
    for batch in ds.dataset(path, format="parquet").to_batches(columns=cols, use_threads=True):
        M = np.column_stack([batch.column(c).to_numpy() for c in cols])
        total += M.shape[0]
    return total


def streammix_file() -> str:
    """Where streammix is imported from (the workers check they take the same)."""
    import streammix
    return streammix.__file__


def em_iteration(engine, source, params, p):
    stats = engine.map_reduce(source, EStepTask(params, True),
                              SuffStats.zeros(params.n_components, p))
    new, _ = mstep(stats, params, MStepOptions(variance_floor=1e-8))
    return stats, new


def peak_rss_mib() -> float:
    """Peak resident memory of this process (VmHWM), in MiB.

    ``getrusage``'s ``ru_maxrss`` survives ``fork``/``exec``, so a spawned
    worker would report its parent's peak; VmHWM does not.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak_rss() -> None:
    """Restart the peak-RSS count of this process (Linux: clear_refs 5).

    Memory that an earlier stage freed but the allocators kept (pyarrow's
    pool holds the scans' buffers) is handed back first, so that it is not
    counted as the next stage's peak.
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


THREADED = "pyarrow dataset scan, threads"


def profile_pass(engine, source) -> Profile:
    """Pass 0 of a default fit (default ``init_sample_size``, no spectral sums:
    only ``init="spectral"`` reads them).

    The in-process engine holds BLAS to one thread while its threads run a
    pass, as Dask's nanny does for workers (``streammix.engines.blas_threads``).
    """
    size = 100_000
    floor = key_floor(size, source.n_rows)  # as a fit draws it (rows known from the plan)
    # lazy profiles, gathered once after the pass, as a fit takes them (if this streammix has them)
    lazy = {"lazy": True} if "lazy" in ProfileTask.__dataclass_fields__ else {}
    profile = engine.map_reduce(source, ProfileTask(0, size, floor, spectral=False, **lazy),
                                Profile.empty(source.n_features, size))
    return profile.settled() if lazy else profile


def unfused(fn):
    """``fn()`` with a ``+`` task per sum of DaskEngine's reduction tree (before), if
    this streammix fuses them."""
    from streammix.engines import dask_graph

    saved = getattr(dask_graph, "FUSED_LEVELS", None)
    if saved is None:
        return fn()
    dask_graph.FUSED_LEVELS = 1
    try:
        return fn()
    finally:
        dask_graph.FUSED_LEVELS = saved


def rounds(stages: dict, repeat: int) -> dict:
    """Seconds of each stage, ``repeat`` rounds that run every stage once in turn
    (odd rounds in reverse order).

    The pyarrow scans run once untimed just before their timed run: the
    dataset scanner reads ahead many batches, and its first run after other
    work paid page faults for them (2.1 s, then 0.53 s, in one process), so
    the peer is timed warm, at its best.
    """
    times: dict = {name: [] for name in stages}
    for round_ in range(repeat):
        # every other round in reverse order, so that no stage always follows the same one
        order = list(stages.items())
        for name, fn in (order[::-1] if round_ % 2 else order):
            gc.collect()
            if name.startswith("pyarrow"):
                fn()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def report(times: dict, n_rows: int, repeat: int) -> None:
    """Medians, and the median over the rounds of each stage's ratio to the threaded scan."""
    unit, single = times[THREADED], times["pyarrow scan -> numpy, 1 thread"]
    scans = [ts for name, ts in times.items() if name.startswith("pyarrow")]
    best = [min(round_) for round_ in zip(*scans, strict=True)]
    width = max(len(k) for k in times)
    print(f"\nmedians of {repeat} rounds (ratios: median of the per-round ratios)")
    print(f"{'':{width}}  {'seconds':>8}  {'x thr.':>7}  {'x best':>7}  {'x 1 thr.':>8}  "
          f"{'Mrows/s':>8}")
    for name, ts in times.items():
        t = statistics.median(ts)
        k = len(ts)
        thr, top, one = (statistics.median(a / b for a, b in zip(ts, ref[:k], strict=True))
                         for ref in (unit, best, single))
        print(f"{name:{width}}  {t:8.3f}  {thr:7.2f}  {top:7.2f}  {one:8.2f}  "
              f"{n_rows / t / 1e6:8.2f}")
    print("x thr.: time / pyarrow's threaded dataset scan in the same round (all cores both "
          "sides); x best: / the fastest of the three pyarrow scans in that round; x 1 thr.: "
          "/ the one-thread scan (the cache rows: / the scans of the rounds in turn)")


def breakdown(source: ParquetSource, params: MixtureParams, repeat: int) -> None:
    """CPU seconds of a one-thread pass: pyarrow's decoding, the rest of ``read``, the E-step."""
    task = EStepTask(params, True)
    parts: dict = {"pyarrow decode (read_row_groups)": [], "rest of ParquetSource.read": [],
                   "E-step (compiled kernel)" if task.releases_gil else "E-step (numpy)": []}
    names = list(parts)
    for _ in range(repeat):
        decode = read = estep = 0.0
        for piece in source.plan():
            c0 = time.process_time()
            pq.ParquetFile(piece.path).read_row_groups(list(piece.row_groups),
                                                       columns=source.columns,
                                                       use_threads=False)
            c1 = time.process_time()
            chunk = source.read(piece)
            c2 = time.process_time()
            task(chunk)
            c3 = time.process_time()
            decode, read, estep = decode + c1 - c0, read + c2 - c1, estep + c3 - c2
        parts[names[0]].append(decode)
        parts[names[1]].append(read - decode)
        parts[names[2]].append(estep)
    width = max(len(k) for k in parts)
    total = sum(statistics.median(v) for v in list(parts.values())[1:]) \
        + statistics.median(parts[names[0]])
    print(f"\nwhere a one-thread pass spends its CPU (process CPU seconds, medians of {repeat})")
    for name, v in parts.items():
        print(f"  {name:{width}}  {statistics.median(v):7.3f}  "
              f"({100 * statistics.median(v) / total:4.1f}%)")


FIRST, LATER = "2 workers + cache, first pass (reads)", "2 workers + cache, later passes"


def cache_rounds(client, source, params, p, repeat: int) -> tuple[dict, dict]:
    """Seconds of the cached passes, ``repeat`` rounds of: a first pass (reads and
    keeps the chunks), a later one (only computes), the cache cleared and the
    workers' memory handed back; and the workers' peak RSS with the cache."""
    times: dict = {FIRST: [], LATER: []}
    peak: dict = {}
    cpu: list = []  # the workers' (user, system) CPU seconds in each round's first pass
    plain: list = []  # and in a pass without the cache just before it
    for _ in range(repeat):
        before = client.run(cpu_seconds)
        em_iteration(DaskEngine(client), source, params, p)
        after = client.run(cpu_seconds)
        plain.append([tuple(b - a for a, b in zip(before[k], after[k], strict=True))
                      for k in sorted(after)])
        cached = DaskEngine(client, cache=True)
        for name in times:
            gc.collect()
            before = client.run(cpu_seconds)
            t = time.perf_counter()
            em_iteration(cached, source, params, p)
            times[name].append(time.perf_counter() - t)
            if name == FIRST:
                after = client.run(cpu_seconds)
                cpu.append([tuple(b - a for a, b in zip(before[k], after[k], strict=True))
                            for k in sorted(after)])
        peak = client.run(peak_rss_mib)
        cached.clear_cache()
        client.run(reset_peak_rss)
    for what, rows in (("the cached first pass", cpu), ("a pass without cache before it", plain)):
        print(f"\nthe workers' CPU seconds (user system) in {what}, by round: "
              + "; ".join(", ".join(f"{u:.2f} {s:.2f}" for u, s in round_) for round_ in rows))
    return times, peak


def cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def fault_in(nbytes: int) -> float:
    """Seconds to write ``nbytes`` of fresh memory from pyarrow's pool (then handed back):
    what keeping that many bytes of chunks costs beyond reading them."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    t = time.perf_counter()
    buffers = [pa.allocate_buffer(1 << 23) for _ in range(max(1, nbytes >> 23))]
    for buffer in buffers:
        np.frombuffer(buffer, dtype=np.uint8).fill(1)
    seconds = time.perf_counter() - t
    del buffers
    pa.default_memory_pool().release_unused()
    return seconds


def peak_of(fn) -> tuple[float, float]:
    """(RSS peak before, RSS peak during) ``fn()``, in MiB."""
    pa.default_memory_pool().release_unused()
    reset_peak_rss()
    base = peak_rss_mib()
    fn()
    return base, peak_rss_mib()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--features", type=int, default=9, help="d without the intercept")
    ap.add_argument("--components", type=int, default=4)
    ap.add_argument("--row-group", type=int, default=131_072)
    ap.add_argument("--rows-per-file", type=int, default=1_048_576)
    ap.add_argument("--chunk-rows", type=int, default=131_072)
    ap.add_argument("--repeat", type=int, default=5, help="rounds (each runs every stage once)")
    ap.add_argument("--breakdown", action="store_true",
                    help="also print where a one-thread pass spends its CPU")
    ap.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster stages")
    ap.add_argument("--dir", default=None, help="where to build the lake (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the lake afterwards")
    ap.add_argument("--library", default=HERE,
                    help="the checkout whose streammix is timed (default: this one)")
    ap.add_argument("--baseline", default=None, metavar="DIR",
                    help="run this script for checkout DIR and for --library in turn, --repeat "
                         "times each (one round a run), and print both side by side")
    ap.add_argument("--json", default=None, help="also write the stage times to this file")
    args = ap.parse_args(argv)
    if args.baseline is not None:
        alternate(args, argv if argv is not None else sys.argv[1:])
        return

    params = truth(args.features + 1, args.components)
    p = params.n_coef
    root = args.dir or tempfile.mkdtemp(prefix="streammix-lake-")
    lake = os.path.join(root, "lake")
    try:
        t0 = time.perf_counter()
        if not os.path.isdir(lake):
            build_lake(lake, args.rows, params, args.row_group, args.rows_per_file)
        size = sum(os.path.getsize(os.path.join(lake, f)) for f in os.listdir(lake))
        print(f"lake: {args.rows:,} rows, d={p} (with intercept), m={args.components}, "
              f"{len(os.listdir(lake))} files, {size / 2**20:.0f} MiB "
              f"(ready in {time.perf_counter() - t0:.1f} s); load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {streammix_file()}")
        features = [f"x{k}" for k in range(1, args.features + 1)]
        source = ParquetSource(lake, target="y", features=features, chunk_rows=args.chunk_rows)
        threads = default_threads()
        one, default = InProcessEngine(1), InProcessEngine()
        stats = em_iteration(one, source, params, p)[0]
        peak = peak_of(lambda: em_iteration(one, source, params, p))
        stages = {
            THREADED: lambda: scan_threaded(lake, source.columns),
            "pyarrow scan -> numpy, 1 thread": lambda: scan_numpy(source),
            f"pyarrow scan -> numpy, {threads} threads": lambda: scan_pool(source, threads),
            f"streammix EM iteration, in-process ({threads} threads)":
                lambda: em_iteration(default, source, params, p),
            "  the same, 1 thread": lambda: em_iteration(one, source, params, p),
            f"streammix profiling pass, in-process ({threads} threads)":
                lambda: profile_pass(default, source),
        }
        with contextlib.ExitStack() as stack:
            workers_plain = workers_cache = None
            if not args.no_cluster:
                from distributed import Client, LocalCluster
                cluster = stack.enter_context(LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"))
                client = stack.enter_context(Client(cluster))
                here = client.run(streammix_file)
                assert set(here.values()) == {streammix_file()}, f"workers import {here}"
                dask = DaskEngine(client)
                dstats = em_iteration(dask, source, params, p)[0]  # warm-up: imports
                assert dstats.allclose(stats, rtol=0.0), "2 workers != in-process"
                client.run(reset_peak_rss)
                stages["streammix EM iteration, 2 workers"] = \
                    lambda: em_iteration(dask, source, params, p)
                stages["streammix profiling pass, 2 workers"] = \
                    lambda: profile_pass(dask, source)
                stages["  EM, 2 workers, a + task per sum"] = \
                    lambda: unfused(lambda: em_iteration(dask, source, params, p))
                stages["  profiling, 2 workers, a + task per sum"] = \
                    lambda: unfused(lambda: profile_pass(dask, source))
            times = rounds(stages, args.repeat)
            if not args.no_cluster:
                workers_plain = client.run(peak_rss_mib)
                client.run(reset_peak_rss)
                cache_times, workers_cache = cache_rounds(client, source, params, p,
                                                          args.repeat)
                times.update(cache_times)
                share = args.rows * (p + 1) * 8 // 2  # each worker's half of the cache
                fresh = client.run(fault_in, share)

        report(times, args.rows, args.repeat)
        if workers_cache is not None:
            print(f"the cached first pass of the first round: {times[FIRST][0]:.3f} s; writing "
                  f"{share / 2**20:.0f} MiB of fresh memory (a worker's share of the cache) "
                  "took " + ", ".join(f"{v:.3f}" for v in fresh.values()) + " s on the workers")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"times": times, "load": os.getloadavg()}, fh)
        if args.breakdown:
            breakdown(source, params, args.repeat)
        print(f"\npeak RSS (MiB): an in-process pass on 1 thread {peak[1]:.0f} "
              f"(at start {peak[0]:.0f})")
        if workers_plain is not None:
            print("  workers, passes without cache: "
                  + ", ".join(f"{v:.0f}" for v in workers_plain.values())
                  + "; with cache: " + ", ".join(f"{v:.0f}" for v in workers_cache.values()))
        print(f"decoded data: {args.rows * (p + 1) * 8 / 2**20:.0f} MiB as float64 "
              "(X, y, w); the cache holds it on the workers")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


def alternate(args, argv: list[str]) -> None:
    """``--baseline``: this script for the two checkouts in turn, on one lake."""
    root = args.dir or tempfile.mkdtemp(prefix="streammix-lake-")
    params = truth(args.features + 1, args.components)
    try:
        lake = os.path.join(root, "lake")
        if not os.path.isdir(lake):
            build_lake(lake, args.rows, params, args.row_group, args.rows_per_file)
        skip = {"--baseline", "--repeat", "--library", "--json", "--dir"}
        rest, i = [], 0
        while i < len(argv):  # the options the runs share
            name = argv[i].split("=", 1)[0]
            if name in skip:
                i += 1 if "=" in argv[i] else 2
                continue
            rest.append(argv[i])
            i += 1
        run_alternating(os.path.abspath(__file__), os.path.abspath(args.baseline),
                        os.path.abspath(args.library), [*rest, "--dir", root, "--keep"],
                        args.repeat)
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
