"""Online EM with concomitant variables against the batch fit on the same 1M rows.

Run from the repository root::

    PYTHONPATH=.:tests/algorithms python benchmarks/bench_online_gate.py

The 3-component model with 2 concomitant variables of
``tests/algorithms/test_online_gate.py`` (``gated_data``, seed 1): one online
pass with ``partial_fit(..., concomitant=Z)`` in batches of 10k rows, then
the batch fit ``fit(X, y, concomitant=Z, se=True)`` on the same rows.  Prints
the wall times, the batch fit's passes, and the differences online − batch
of the gate coefficients (free rows) and of the regression coefficients in
the batch fit's standard errors.  Target: every |z| < 3.  Not part of the
test suite (the batch fit takes over a minute).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from test_online_gate import gated_data, stream

from streammix import MixtureOfLinearRegressions


def main() -> None:
    X, y, Z = gated_data(1_000_000, seed=1)
    t = time.perf_counter()
    online = stream(MixtureOfLinearRegressions(3, random_state=0), X, y, Z, 10_000)
    t_online = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = MixtureOfLinearRegressions(3, random_state=0).fit(X, y, concomitant=Z,
                                                                  se=True)
    t_batch = time.perf_counter() - t
    print(f"online pass {t_online:.1f} s; batch fit {t_batch:.1f} s, {batch.n_passes_} passes, "
          f"converged {batch.converged_}")
    gate = (online.concomitant_coef_ - batch.concomitant_coef_)[1:] \
        / batch.bse_["concomitant"][1:]
    beta = (np.column_stack([online.intercept_, online.coef_])
            - np.column_stack([batch.intercept_, batch.coef_])) / batch.bse_["coef"]
    print("gate (online - batch) / se:", gate.round(2).tolist())
    print("coef (online - batch) / se:", beta.round(2).tolist())
    print("max |z|:", float(max(np.abs(gate).max(), np.abs(beta).max())))


if __name__ == "__main__":
    main()
