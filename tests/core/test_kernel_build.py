"""setup.py's build of the kernel with compilers that reject its flags or do not work.

Each test runs ``setup.py build_ext`` into a temporary directory (never in
place) with ``CC`` set to a stand-in compiler: a script that rejects chosen
options and otherwise hands over to GCC, or ``/bin/false``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from support.mixtures import kernel_and_numpy

from streammix import MixtureParams
from streammix.core import kernel

ROOT = Path(__file__).resolve().parents[2]
GCC = shutil.which("gcc")

pytestmark = pytest.mark.skipif(
    GCC is None or not sys.platform.startswith("linux") or not (ROOT / "setup.py").exists(),
    reason="needs GCC on Linux and the source tree")

# The stand-in compiler: it logs its arguments, rejects the ones in REJECT
# (glob patterns) as an unknown compiler would, fails on _kernel.c when it is
# given one in BREAK (as a compiler that cannot build the kernel with that
# option), and otherwise runs GCC.
FAKE_CC = """#!/bin/sh
echo "$*" >> "{log}"
for a in "$@"; do
    for r in {reject}; do
        case "$a" in $r) echo "fake-cc: unknown option $a" >&2; exit 1;; esac
    done
done
case "$*" in *_kernel.c*)
    for a in "$@"; do
        for b in {brk}; do
            case "$a" in $b) echo "fake-cc: internal error with $a" >&2; exit 1;; esac
        done
    done;;
esac
exec {gcc} "$@"
"""


def _build(tmp_path: Path, cc: str) -> tuple[Path | None, str]:
    """setup.py build_ext with CC=cc into tmp_path: the built module (or None) and the log."""
    env = {**os.environ, "CC": cc}
    env.pop("LDSHARED", None)  # linking follows CC
    done = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    built = list((tmp_path / "lib").rglob("_kernel*" + sysconfig.get_config_var("EXT_SUFFIX")))
    return (built[0] if built else None), done.stdout + done.stderr


def _fake_cc(tmp_path: Path, reject: str = "", brk: str = "") -> tuple[str, Path]:
    log = tmp_path / "cc.log"
    script = tmp_path / "fake-cc"
    script.write_text(FAKE_CC.format(log=log, reject=reject or "__none__",
                                     brk=brk or "__none__", gcc=GCC))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), log


def _equals_numpy(path: Path, kernel_switch, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("built._kernel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.API == kernel.KERNEL_API
    monkeypatch.setattr(kernel, "estep_chunk", module.estep_chunk)
    rng = np.random.default_rng(5)
    for d, m, n in [(3, 2, 300), (19, 5, 700)]:
        X, y, w = rng.normal(size=(n, d)), rng.normal(size=n), rng.uniform(0.5, 2.0, size=n)
        prm = [MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, d + 1)),
                             rng.uniform(0.3, 3.0, size=m))]
        fast, slow = kernel_and_numpy(kernel_switch, np.ascontiguousarray(X.T), y, w, prm, True)
        for name in ("s0", "s2", "rx", "r0", "loglik"):
            ref = np.asarray(getattr(slow[0], name))
            scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
            np.testing.assert_allclose(np.asarray(getattr(fast[0], name)), ref, rtol=0,
                                       atol=1e-12 * scale, err_msg=name)


@pytest.mark.slow
def test_rejected_flags_are_dropped_and_libmvec_left_out(tmp_path, kernel_switch, monkeypatch):
    # A compiler without -fopenmp-simd and the x86 width flag, and no libmvec:
    # the flags it takes are kept, the rest dropped, the link retried without mvec.
    cc, log = _fake_cc(tmp_path, reject="-fopenmp-simd '-mprefer-vector-width=*' -lmvec")
    built, out = _build(tmp_path, cc)
    assert built is not None, out
    assert "scalar exp/log" in out
    kernel_line = [line for line in log.read_text().splitlines()
                   if "_kernel.c" in line and " -c " in f" {line} "][-1]
    assert "-fno-math-errno" in kernel_line and "SM_NO_MVEC" in kernel_line
    assert "-fopenmp-simd" not in kernel_line and "-mprefer-vector-width" not in kernel_line
    _equals_numpy(built, kernel_switch, monkeypatch)


@pytest.mark.slow
def test_a_compiler_that_fails_with_the_flags_gets_a_plain_build(tmp_path, kernel_switch,
                                                                  monkeypatch):
    # It takes every flag on an empty file but cannot build the kernel with
    # -fno-math-errno: the last attempt, with no flags of ours, is kept.
    cc, log = _fake_cc(tmp_path, brk="-fno-math-errno")
    built, out = _build(tmp_path, cc)
    assert built is not None, out
    assert "with a plain build (no flags of ours)" in out
    kernel_line = [line for line in log.read_text().splitlines() if "_kernel.c" in line][-1]
    assert "-fopenmp-simd" not in kernel_line and "-fno-math-errno" not in kernel_line
    _equals_numpy(built, kernel_switch, monkeypatch)


@pytest.mark.slow
def test_no_working_compiler_leaves_the_numpy_code_with_a_warning(tmp_path):
    built, out = _build(tmp_path, "/bin/false")
    assert built is None
    assert "could not be built with this C compiler" in out
    assert "numpy code instead" in out
    # and without the module, the package imports, says so once, and fits with numpy
    code = ("import sys; sys.modules['streammix.core._kernel'] = None\n"
            "import numpy as np, streammix\n"
            "from streammix.core import kernel\n"
            "assert not kernel.available() and not kernel.enabled()\n"
            "rng = np.random.default_rng(0); X = rng.normal(size=(400, 2))\n"
            "y = X @ [1.0, -1.0] + np.where(rng.random(400) < 0.5, -3, 3)\n"
            "streammix.MixtureOfLinearRegressions(2, random_state=0).fit(X, y)\n")
    for flag, warned in (("1", True), ("0", False)):
        env = {**os.environ, "STREAMMIX_KERNEL": flag}
        env.pop(kernel._WARNED, None)  # set when this process has no kernel either
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert ("compiled kernel of streammix" in done.stderr
                and "is not built" in done.stderr) is warned, done.stderr
        assert done.stderr.count("is not built") <= 1


AARCH64_CC = shutil.which("aarch64-linux-gnu-gcc")
QEMU = shutil.which("qemu-aarch64")
HARNESS = Path(__file__).with_name("kernel_harness.c")


def _run_harness(cc: str, flags: list[str], tmp_path: Path, runner: list[str]) -> str:
    """kernel_harness.c built statically with cc and flags, run (under runner): its output."""
    exe = tmp_path / "harness"
    done = subprocess.run(
        [cc, "-static", *flags, "-I" + sysconfig.get_paths()["include"],
         "-I" + str(ROOT / "streammix" / "core"), str(HARNESS), "-o", str(exe),
         "-Wl,--unresolved-symbols=ignore-all", "-lm"],
        capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and "cannot find -lc" in done.stderr:
        pytest.skip("no static C library for " + cc)
    assert done.returncode == 0, done.stderr
    ran = subprocess.run([*runner, str(exe)], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "40 runs" in ran.stdout
    return ran.stdout


@pytest.mark.slow
def test_c_harness_equals_a_row_by_row_estep_natively(tmp_path):
    # The harness itself, on this machine, with the flags setup.py takes everywhere.
    flags = ["-O3", "-fopenmp-simd", "-fno-math-errno"]
    _run_harness(GCC, flags, tmp_path, [])


@pytest.mark.slow
@pytest.mark.skipif(AARCH64_CC is None or QEMU is None,
                    reason="needs aarch64-linux-gnu-gcc and qemu-aarch64")
def test_aarch64_build_takes_the_portable_flags_and_runs_correctly(tmp_path):
    # setup.py as on an aarch64 machine (platform.machine() says so), with the
    # aarch64 cross compiler: the kernel is built with -O3 -fopenmp-simd
    # -fno-math-errno and without the x86 width flag and libmvec; and the same
    # source and flags, in the C harness under qemu, equal the row-by-row
    # E-step for the plain loops and the vector-extension code.
    code = ("import platform, runpy, sys\n"
            "platform.machine = lambda: 'aarch64'\n"
            "sys.argv = ['setup.py', 'build_ext', '--build-lib', sys.argv[1],"
            " '--build-temp', sys.argv[2]]\n"
            "runpy.run_path('setup.py', run_name='__main__')\n")
    env = {**os.environ, "CC": AARCH64_CC}
    env.pop("LDSHARED", None)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "lib"),
                           str(tmp_path / "tmp")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    built = list((tmp_path / "lib").rglob("_kernel*"))
    assert built, out
    assert built[0].read_bytes()[18] == 183  # ELF e_machine: EM_AARCH64
    compile_line = next(line for line in out.splitlines() if "_kernel.c" in line and " -c " in line)
    assert all(flag in compile_line for flag in ("-O3", "-fopenmp-simd", "-fno-math-errno"))
    assert "-mprefer-vector-width" not in compile_line and "-lmvec" not in out
    assert "failed" not in out
    _run_harness(AARCH64_CC, ["-O3", "-fopenmp-simd", "-fno-math-errno"], tmp_path,
                 [QEMU])
