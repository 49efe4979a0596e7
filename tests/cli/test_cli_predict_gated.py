"""``streammix predict`` of a model fitted with concomitant variables: the weights are
π(z) of each row, read from the data's z columns (named in the model file)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streammix import MixtureOfLinearRegressions, ParquetSource
from streammix.cli.main import main

INIT = {"weights": [0.5, 0.5], "intercept": [2.0, -2.0], "coef": [[1.0], [-1.0]],
        "sigma": [1.0, 1.0]}


def _table(n: int, seed: int, with_y: bool = True) -> pa.Table:
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    second = rng.random(n) < 1 / (1 + np.exp(-1.5 * z))
    y = np.where(second, -2 - x, 2 + x) + rng.normal(scale=0.5, size=n)
    return pa.table({"x": x, "z": z, **({"y": y} if with_y else {})})


def test_predict_without_the_target_uses_pi_of_z_of_each_row(tmp_path, capsys):
    (tmp_path / "lake").mkdir()
    pq.write_table(_table(1500, 1), tmp_path / "lake" / "part.parquet")
    source = ParquetSource(tmp_path / "lake", target="y", features=["x"], concomitant=["z"])
    model = MixtureOfLinearRegressions(2, init=INIT, tol=1e-8).fit(source)
    model.save(tmp_path / "model.json")
    (tmp_path / "new").mkdir()
    new = _table(100, 2, with_y=False)
    pq.write_table(new, tmp_path / "new" / "part.parquet")
    code = main(["predict", str(tmp_path / "model.json"), str(tmp_path / "new"), "--out",
                 str(tmp_path / "pred"), "-q"])
    assert code == 0, capsys.readouterr().err
    pred = pq.read_table(tmp_path / "pred" / "part.parquet")
    z = new.column("z").to_numpy()[:, None]
    x = new.select(["x"]).to_pandas()  # by name, as fitted
    pi = model.predict_weights(z)
    assert np.ptp(pi[:, 0]) > 0.3  # the weights do change with z
    np.testing.assert_allclose(np.column_stack([pred.column("prior_1"), pred.column("prior_2")]),
                               pi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pred.column("mean").to_numpy(), model.predict(x, concomitant=z),
                               rtol=0, atol=1e-12)
