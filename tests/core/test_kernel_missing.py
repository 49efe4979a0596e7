"""What a user sees when the compiled kernel is not built: one warning, at their own line.

The kernel is hidden from every process of the test (the script's and the
workers' of its ``LocalCluster``, which inherit ``PYTHONPATH``) by a
``sitecustomize`` that blocks ``streammix.core._kernel``, as an installation
without a C compiler has it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streammix.core import kernel

BLOCK = "import sys\nsys.modules['streammix.core._kernel'] = None\n"

SCRIPT = """\
import numpy as np
import pandas as pd
from streammix import MixtureOfLinearRegressions

if __name__ == "__main__":
    import dask.dataframe as dd
    from distributed import Client, LocalCluster
    from streammix.core import kernel
    assert not kernel.available()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    y = X @ [1.0, -1.0] + np.where(rng.random(2000) < 0.5, -3.0, 3.0) + rng.normal(size=2000)
    frame = dd.from_pandas(pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "y": y}), npartitions=4)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        MixtureOfLinearRegressions(2, random_state=0).fit(frame, target="y")
        ran = client.run(lambda: __import__("streammix.core.kernel").core.kernel.available())
        assert len(ran) == 2 and not any(ran.values()), ran
    print("fitted")
"""


@pytest.mark.slow
def test_a_missing_kernel_warns_once_at_the_users_import_not_once_per_worker(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCK)
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("STREAMMIX_KERNEL", None)
    env.pop(kernel._WARNED, None)  # set when this process has no kernel either
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "fitted" in done.stdout
    assert done.stderr.count("is not built") == 1, done.stderr
    warning = next(line for line in done.stderr.splitlines() if "is not built" in line)
    # the user's line (their import of the estimator), not a module of the library
    assert warning.startswith(f"{script}:3: RuntimeWarning"), done.stderr
