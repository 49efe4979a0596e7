"""Grouped lakes with concomitant columns and a weight column.

``ParquetSource(..., groups="id", concomitant=["z1", "z2"], weight="w")``: the
fit equals the in-memory ``fit(X, y, w, groups=ids, concomitant=Z)`` of the
same rows (1e-10), from the data of ``tests/fixtures/r/grouped_gate.csv``
(whose in-memory fits are held to flexmix in
``tests/promises/test_r_conformance_grouped_gate.py``).  The files and row
groups cut through groups, so the plan joins chunks.  A z or weight that
varies within a group names the file, the column and the group; a stopped fit
resumes from its checkpoint bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import FIXTURES
from support.interrupt import Interrupt, stop_after

from streammix import DataError, MixtureOfLinearRegressions, ParquetSource
from streammix.estimator.prediction import write_predictions

FRAME = pd.read_csv(FIXTURES / "r" / "grouped_gate.csv")


def _lake(df: pd.DataFrame, folder, n_files: int = 3, row_group_size: int = 520) -> None:
    for i, part in enumerate(np.array_split(np.arange(len(df)), n_files)):
        pq.write_table(pa.Table.from_pandas(df.iloc[part], preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=row_group_size)


def _model(gated: bool = True) -> MixtureOfLinearRegressions:
    """Gated: SQUAREM to convergence.  Without a gate: 40 passes of plain EM (not
    converged: the same passes must give the same numbers; 140 would take seconds)."""
    if gated:
        return MixtureOfLinearRegressions(2, random_state=0, tol=1e-6, max_iter=2000)
    return MixtureOfLinearRegressions(2, random_state=0, tol=1e-12, max_iter=40)


@pytest.mark.filterwarnings("ignore::streammix.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::streammix.exceptions.InferenceWarning")
@pytest.mark.parametrize(("weight", "gate"), [("w", ["z1", "z2"]), (None, ["z1", "z2"]),
                                              ("w", None)])
def test_a_grouped_lake_with_a_gate_and_weights_fits_as_in_memory(tmp_path, weight, gate):
    _lake(FRAME, tmp_path)
    source = ParquetSource(tmp_path, target="y", features=["x"], groups="id", weight=weight,
                           concomitant=gate, chunk_rows=300)
    assert any(len(t.pieces) > 1 for t in source.grouped_view().plan())  # groups cut: joined
    lake = _model(gate is not None).fit(source, se=True)
    memory = _model(gate is not None).fit(FRAME[["x"]].to_numpy(), FRAME.y.to_numpy(),
                          None if weight is None else FRAME.w.to_numpy(),
                          groups=FRAME.id.to_numpy(),
                          concomitant=None if gate is None else FRAME[gate].to_numpy(), se=True)
    assert lake.n_groups_ == memory.n_groups_ == 300
    assert lake.n_iter_ == memory.n_iter_ >= 10
    assert lake.loglik_ == pytest.approx(memory.loglik_, rel=1e-10)
    for name in ("intercept_", "coef_", "sigma_", "weights_"):
        np.testing.assert_allclose(getattr(lake, name), getattr(memory, name), rtol=0,
                                   atol=1e-10)
    if gate is not None:
        np.testing.assert_allclose(lake.concomitant_coef_, memory.concomitant_coef_, rtol=0,
                                   atol=1e-10)
        assert lake.concomitant_names_ == gate
    np.testing.assert_allclose(lake.vcov_, memory.vcov_, rtol=1e-8, atol=1e-12)
    assert lake.n_passes_ == memory.n_passes_ + 1  # the locating pass


@pytest.mark.filterwarnings("ignore::streammix.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("column", ["z2", "w"])
def test_a_column_that_varies_within_a_group_names_the_file_column_and_group(tmp_path,
                                                                               column):
    df = FRAME.copy()
    rows = np.flatnonzero(df.id.to_numpy() == 250)
    df.loc[rows[1], column] = df.loc[rows[1], column] + 1.0
    _lake(df, tmp_path)
    source = ParquetSource(tmp_path, target="y", features=["x"], groups="id", weight="w",
                           concomitant=["z1", "z2"])
    with pytest.raises(DataError, match=rf"part-2\.parquet: column '{column}' varies within "
                                        r"group 250"):
        _model().fit(source)


def test_a_stopped_grouped_gated_lake_fit_resumes_bit_for_bit(tmp_path):
    """Each saved pass holds the gate Γ it was made at and the gate's statistics over
    groups; the resumed fit replays them and ends with the uninterrupted fit's numbers."""
    (tmp_path / "lake").mkdir()
    _lake(FRAME, tmp_path / "lake")
    source = ParquetSource(tmp_path / "lake", target="y", features=["x"], groups="id",
                           weight="w", concomitant=["z1", "z2"], chunk_rows=300)
    calls: list = []
    reference = _model().fit(source, callback=calls.append)
    assert len(calls) > 10
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        _model().fit(source, checkpoint=folder, callback=stop_after(len(calls) // 2))
    resumed = _model().fit(source, checkpoint=folder, resume=True)
    for name in ("intercept_", "coef_", "sigma_", "weights_", "concomitant_coef_"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name))
    assert resumed.loglik_ == reference.loglik_ and resumed.n_groups_ == 300


def _log_norm_pdf(r, s2):
    return -0.5 * (np.log(2 * np.pi * s2) + r * r / s2)


def test_group_posteriors_of_a_gated_model_use_each_groups_prior(tmp_path):
    """In memory (``predict_proba(..., groups=, concomitant=)``) and written from a lake:
    P(j | group) ∝ π_j(z_g) Π_i φ_ij, against the formula in plain numpy."""
    (tmp_path / "lake").mkdir()
    _lake(FRAME, tmp_path / "lake")
    source = ParquetSource(tmp_path / "lake", target="y", features=["x"], groups="id",
                           concomitant=["z1", "z2"], chunk_rows=300)
    model = _model().fit(source)
    X, y, ids = FRAME[["x"]], FRAME.y.to_numpy(), FRAME.id.to_numpy()
    Zg = FRAME[["z1", "z2"]].to_numpy()
    eta = np.column_stack([np.ones(len(y)), Zg]) @ model.concomitant_coef_.T
    log_pi = eta - np.log(np.exp(eta).sum(axis=1, keepdims=True))
    resid = y[:, None] - model.intercept_ - X.to_numpy() @ model.coef_.T
    dens = _log_norm_pdf(resid, model.sigma_**2)
    sums = pd.DataFrame(dens, index=ids).groupby(level=0).sum()
    L = sums.to_numpy() + pd.DataFrame(log_pi, index=ids).groupby(level=0).first().to_numpy()
    post = np.exp(L - L.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    expected = pd.DataFrame(post, index=sums.index).loc[ids].to_numpy()
    got = model.predict_proba(X, y, groups=ids, concomitant=Zg)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    write_predictions(model, source, tmp_path / "pred", keep=["id"])
    pred = pq.read_table(tmp_path / "pred").to_pandas()
    by_id = pd.DataFrame(post, index=sums.index)
    np.testing.assert_allclose(pred[["prob_1", "prob_2"]].to_numpy(),
                               by_id.loc[pred.id].to_numpy(), rtol=0, atol=1e-10)
