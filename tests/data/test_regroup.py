"""``streammix regroup`` / :func:`streammix.regroup`: a lake rewritten by group.

The input lake's rows are shuffled over four files, so every group spans
several files and a grouped fit with a small task bound is refused; after
regroup each group lies in one row group of one file, and the grouped fit of
the new lake equals the in-memory grouped fit (same starting values).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.grouped import INIT
from support.grouped import grouped_frame as _frame

from streammix import DataError, MixtureOfLinearRegressions, ParquetSource, regroup
from streammix.cli.main import main


def _scattered(folder):
    df = _frame().sample(frac=1.0, random_state=0)  # rows of every group in every file
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(df)), 4)):
        pq.write_table(pa.Table.from_pandas(df.iloc[part], preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=100)
    return df


def _model() -> MixtureOfLinearRegressions:
    return MixtureOfLinearRegressions(2, init=INIT, tol=1e-10, max_iter=500)


def test_regroup_puts_each_group_in_one_file_and_the_fit_equals_memory(tmp_path):
    df = _scattered(tmp_path / "lake")
    source = ParquetSource(tmp_path / "lake", target="y", features=["x"], groups="id",
                           max_task_rows=400)
    with pytest.raises(DataError, match="too spread out"):
        _model().fit(source)
    out = regroup(tmp_path / "lake", "id", tmp_path / "by_id", npartitions=3)
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 3 and not list(tmp_path.glob(".by_id*"))  # no temporary left
    where: dict = {}
    for f in files:
        meta = pq.ParquetFile(f)
        for rg in range(meta.num_row_groups):
            for gid in np.unique(meta.read_row_group(rg, columns=["id"]).column(0).to_numpy(
                    zero_copy_only=False)):
                assert where.setdefault(gid, (f.name, rg)) == (f.name, rg)
    assert len(where) == 120
    regrouped = ParquetSource(out, target="y", features=["x"], groups="id", max_task_rows=400)
    assert all(t.keep is None and len(t.pieces) == 1 for t in regrouped.grouped_view().plan())
    lake = _model().fit(regrouped)
    memory = _model().fit(df[["x"]].to_numpy(), df.y.to_numpy(), groups=df.id.to_numpy())
    np.testing.assert_allclose(lake.coef_, memory.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(lake.weights_, memory.weights_, rtol=0, atol=1e-10)
    assert lake.loglik_ == pytest.approx(memory.loglik_, rel=1e-10)
    assert lake.n_groups_ == 120


def test_cli_regroup_refuses_an_existing_or_nested_out(tmp_path, capsys):
    df = _scattered(tmp_path / "lake")
    out = tmp_path / "by_id"
    assert main(["regroup", str(tmp_path / "lake"), "--groups", "id", "--out", str(out)]) == 0
    assert len(pq.read_table(out).column("id")) == len(df)
    before = sorted(p.name for p in out.iterdir())
    assert main(["regroup", str(tmp_path / "lake"), "--groups", "id", "--out", str(out)]) == 1
    assert "exists: choose another --out, or give --overwrite" in capsys.readouterr().err
    assert main(["regroup", str(tmp_path / "lake"), "--groups", "id", "--out", str(out),
                 "--overwrite", "--files", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) != before and len(list(out.iterdir())) == 2
    nested = tmp_path / "lake" / "inner"
    assert main(["regroup", str(tmp_path / "lake"), "--groups", "id", "--out",
                 str(nested)]) == 1
    assert "must be outside the input" in capsys.readouterr().err and not nested.exists()
    assert main(["regroup", str(tmp_path / "lake"), "--groups", "nope", "--out",
                 str(tmp_path / "x")]) == 1
    assert "group column 'nope' is missing" in capsys.readouterr().err


def test_cli_fit_with_groups_equals_the_library_fit(tmp_path, capsys):
    df = _scattered(tmp_path / "lake")
    out = tmp_path / "model.json"
    argv = ["fit", str(tmp_path / "lake"), "--target", "y", "--features", "x", "-k", "2",
            "--groups", "id", "--seed", "0", "--in-process", "--out", str(out), "-q"]
    assert main(argv + ["--max-task-rows", "400"]) == 1
    assert "group 'g" in capsys.readouterr().err  # too spread: named
    assert main(argv) == 0
    fitted = MixtureOfLinearRegressions.load(out)
    library = MixtureOfLinearRegressions(2, random_state=0).fit(
        ParquetSource(tmp_path / "lake", target="y", features=["x"], groups="id"))
    np.testing.assert_allclose(fitted.params_.beta, library.params_.beta, rtol=0, atol=1e-12)
    memory = MixtureOfLinearRegressions(2, random_state=0).fit(
        df[["x"]].to_numpy(), df.y.to_numpy())  # ignoring the groups: another fit
    assert abs(memory.loglik_ - fitted.loglik_) > 1.0


def test_predictions_of_a_grouped_lake_give_each_row_its_groups_posteriors(tmp_path, capsys):
    df = _scattered(tmp_path / "lake")  # every group spans files
    model = _model().fit(ParquetSource(tmp_path / "lake", target="y", features=["x"],
                                       groups="id", max_task_rows=10**6))
    model.save(tmp_path / "model.json")
    argv = ["predict", str(tmp_path / "model.json"), str(tmp_path / "lake"), "--target", "y",
            "--features", "x", "--keep", "id", "--groups", "id", "--out", str(tmp_path / "p")]
    assert main(argv) == 0
    pred = pq.read_table(tmp_path / "p").to_pandas()
    assert len(pred) == len(df)
    expected = model.predict_proba(df[["x"]], df.y.to_numpy(), groups=df.id.to_numpy())
    by_id = pd.DataFrame(expected, index=df.id.to_numpy()).groupby(level=0).first()
    np.testing.assert_allclose(pred[["prob_1", "prob_2"]].to_numpy(),
                               by_id.loc[pred.id].to_numpy(), rtol=0, atol=1e-10)
    assert (pred.groupby("id").component.nunique() == 1).all()
    rows = model.predict_proba(df[["x"]], df.y.to_numpy())  # per row: not equal
    assert np.abs(np.sort(rows[:, 0]) - np.sort(pred.prob_1.to_numpy())).max() > 0.1
    argv = [a for a in argv if a not in ("--groups", "id", "--keep")] + ["--overwrite"]
    assert main(argv) == 0  # without the group column: rows alone, said so
    assert "fitted with grouped classes but the data have no group column" in \
        capsys.readouterr().err
