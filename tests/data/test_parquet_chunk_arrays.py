"""The arrays a ParquetSource chunk is assembled in: pyarrow's pool, own memory per chunk."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streammix import ParquetSource
from streammix.data.parquet.columns import pool_array


def lake(tmp_path, n=3000, d=3, seed=5):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    cols = {f"x{k}": X[:, k] for k in range(d)} | {"y": y, "z": rng.normal(size=n)}
    pq.write_table(pa.table(cols), tmp_path / "part-0.parquet", row_group_size=500)
    return X, y, cols["z"]


def test_pool_array_is_float64_f_ordered_writable_and_counted_in_the_arrow_pool():
    before = pa.total_allocated_bytes()
    A = pool_array(1000, 4)
    assert A.shape == (1000, 4) and A.dtype == np.float64
    assert A.flags.f_contiguous and A.flags.writeable and A.flags.aligned
    assert pa.total_allocated_bytes() - before >= 1000 * 4 * 8
    A[:] = 2.5  # writable through the buffer
    assert float(A.sum()) == 2.5 * 4000
    v = pool_array(7)
    assert v.shape == (7,) and v.flags.writeable
    assert pool_array(0, 3).shape == (0, 3) and pool_array(0).shape == (0,)
    del A, v
    assert pa.total_allocated_bytes() <= before + 64  # given back when the arrays go


def test_chunks_keep_their_own_values_while_later_chunks_are_read(tmp_path):
    X, y, z = lake(tmp_path)
    source = ParquetSource(tmp_path, target="y", features=["x0", "x1", "x2"],
                           concomitant=["z"], chunk_rows=500)
    chunks = [source.read(piece) for piece in source.plan()]  # all alive at once
    assert len(chunks) == 6
    for k, chunk in enumerate(chunks):
        rows = slice(500 * k, 500 * (k + 1))
        assert chunk.X.flags.f_contiguous and chunk.X.flags.writeable
        np.testing.assert_array_equal(chunk.X, X[rows])
        np.testing.assert_array_equal(chunk.y, y[rows])
        np.testing.assert_array_equal(chunk.w, np.ones(500))
        np.testing.assert_array_equal(chunk.Z[:, 0], z[rows])
    chunks[0].X[:] = 0.0  # writing one chunk touches no other
    chunks[0].w[:] = 3.0
    np.testing.assert_array_equal(chunks[1].X, X[500:1000])
    np.testing.assert_array_equal(chunks[1].w, np.ones(500))


def test_features_of_several_row_groups_are_decoded_straight_into_the_matrix(tmp_path):
    rng = np.random.default_rng(9)
    n = 1200
    X, y = rng.normal(size=(n, 2)), rng.normal(size=n)
    x2 = pa.array(X[:, 1], mask=np.arange(n) == 777)  # one null in the second chunk
    pq.write_table(pa.table({"x1": X[:, 0], "x2": x2, "y": y}), tmp_path / "part-0.parquet",
                   row_group_size=100)  # 6 row groups a chunk
    clean = ParquetSource(tmp_path, target="y", features=["x1"], chunk_rows=600)
    piece = clean.plan()[0]
    assert len(piece.row_groups) == 6
    into: dict = {}
    values = clean._read_values(piece, into=into)[0]
    assert into["direct"] and values["x1"] is not None
    assert np.shares_memory(values["x1"], into["X"])  # decoded into the matrix, no copy
    chunk = clean.read(piece)
    np.testing.assert_array_equal(chunk.X[:, 0], X[:600, 0])
    assert chunk.X.flags.f_contiguous
    dropping = ParquetSource(tmp_path, target="y", features=["x1", "x2"], chunk_rows=600,
                             on_invalid="drop")
    first, second = (dropping.read(p) for p in dropping.plan())
    np.testing.assert_array_equal(first.X, X[:600])
    keep = np.arange(600, n) != 777
    np.testing.assert_array_equal(second.X, X[600:][keep])
    np.testing.assert_array_equal(second.y, y[600:][keep])
    assert second.X.flags.f_contiguous and second.row_ids[177] == 778
