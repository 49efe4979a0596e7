"""The E-step's prefetches of the next block stay inside the arrays (tests/core/prefetch_harness.c).

``pf_lines`` in ``_kernel.c`` walks the cache lines of the next block's
features, y and w between the tiles of the current block.  A prefetch
cannot fault, but forming an address beyond the end of an array is
undefined behaviour in C, and the walk used to step a line or a row's tail
past the end of each run (the last block's rows, a column slice's last
row).  The harness records every address the kernel prefetches on chunks
held in buffers of exactly their size and fails on any outside them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GCC = shutil.which("gcc")
HARNESS = Path(__file__).with_name("prefetch_harness.c")

pytestmark = pytest.mark.skipif(
    GCC is None or not sys.platform.startswith("linux")
    or not (ROOT / "streammix" / "core" / "_kernel.c").exists(),
    reason="needs GCC on Linux and the kernel's source")


@pytest.mark.slow
def test_every_prefetched_address_lies_inside_the_chunk_arrays(tmp_path):
    exe = tmp_path / "prefetch_harness"
    built = subprocess.run(
        [GCC, "-O2", "-fopenmp-simd", "-fno-math-errno", "-no-pie",
         "-I" + sysconfig.get_paths()["include"], "-I" + str(ROOT / "streammix" / "core"),
         str(HARNESS), "-o", str(exe), "-Wl,--unresolved-symbols=ignore-all", "-lm"],
        capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    assert "SM_PREFETCH\" redefined" not in built.stderr, built.stderr
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr
    assert ", 0 outside the arrays" in ran.stdout
