"""``import streammix`` is cheap, and every public name is there when first used.

The public names are imported on first use (the estimator brings scikit-learn,
scipy and pandas: seconds of start-up that ``streammix --help``, a Dask worker
or ``import streammix.atomic`` need not pay).  Checked in a new process, where
nothing is imported yet.
"""

from __future__ import annotations

import subprocess
import sys

from support.cli import SUBPROCESS_ENV

CHECK = """
import pickle, sys
import streammix
import streammix.atomic
heavy = {"sklearn", "scipy", "pandas", "pyarrow", "dask", "distributed", "numpy"}
assert not heavy & {m.split(".")[0] for m in sys.modules}, sorted(sys.modules)
# sub-packages are reached from the package, as the README says of this one
assert streammix.core.kernel.enabled() in (True, False)
for name in streammix.__all__:  # every public name resolves, and stays the same object
    assert getattr(streammix, name) is getattr(streammix, name), name
assert set(streammix.__all__) <= set(dir(streammix))
from streammix import MixtureOfLinearRegressions, NotFittedError
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
assert issubclass(MixtureOfLinearRegressions, BaseEstimator)
assert issubclass(NotFittedError, SklearnNotFittedError) and issubclass(NotFittedError, ValueError)
import streammix.exceptions
assert NotFittedError is streammix.exceptions.NotFittedError is streammix.NotFittedError
assert type(pickle.loads(pickle.dumps(NotFittedError("x")))) is NotFittedError
try:
    MixtureOfLinearRegressions().predict([[0.0]])
except SklearnNotFittedError as exc:
    assert type(exc) is NotFittedError
else:
    raise AssertionError("predict before fit did not raise")
try:
    streammix.no_such_name
except AttributeError as exc:
    assert "no_such_name" in str(exc)
else:
    raise AssertionError("an unknown name did not raise AttributeError")
print("ok")
"""

def test_import_streammix_imports_no_heavy_library_and_every_name_is_there():
    done = subprocess.run([sys.executable, "-c", CHECK], env=SUBPROCESS_ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
