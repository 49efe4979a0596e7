"""Nothing hangs without a word: a YAML bomb is refused at once, a frozen or empty
cluster stops the fit with a one-line error naming what it waited for.

Real ``streammix`` processes, a real cluster config file, and a Dask
scheduler and workers started as processes on 127.0.0.1 (frozen with
SIGSTOP, or left without workers).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streammix.engines.cluster_config import ConfigError, load_cluster_config

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))

BILLION_LAUGHS = """\
type: local
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def _lake(folder: Path, n_files: int = 2, rows: int = 400) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(n_files):
        x = rng.normal(size=rows)
        z = rng.integers(0, 2, rows)
        y = np.where(z, 3 + 2 * x, -3 - x) + rng.normal(scale=0.5, size=rows)
        pq.write_table(pa.table({"x": x, "y": y}), folder / f"part-{k}.parquet")
    return folder


def test_a_billion_laughs_cluster_file_is_refused_at_once_naming_it(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb.yaml: anchor &a at line 2, column 4 is not "
                                          r"allowed"):
        load_cluster_config(bomb)
    # A single alias (e.g. a merge key '<<: *base') is refused as well.
    merged = tmp_path / "merged.yaml"
    merged.write_text("type: local\ncluster: {n_workers: 1}\nengine:\n  <<: *x\n")
    with pytest.raises(ConfigError, match=r"merged.yaml: alias \*x at line 4"):
        load_cluster_config(merged)
    lake = _lake(tmp_path / "lake")
    proc = subprocess.run(
        [sys.executable, "-m", "streammix", "fit", str(lake), "--target", "y", "--features",
         "x", "--components", "2", "--out", str(tmp_path / "m.json"), "--cluster", str(bomb)],
        env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - start < 20  # it took beyond 60 s
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"streammix fit: error: {bomb}: anchor &a at line 2, column 4 is not allowed")
    assert not (tmp_path / "m.json").exists()
