"""Build of the optional compiled kernel (``streammix.core._kernel``).

Everything else about the package is in ``pyproject.toml``.  The kernel is
an optional extension: where it cannot be compiled (no C compiler, an
unusual platform) the build goes on without it and ``streammix`` uses its
numpy E-step, which gives the same results to rounding.

With GCC or clang the kernel is built with ``-O3 -fopenmp-simd
-fno-math-errno`` on every architecture (``omp simd`` lets the compiler
vectorise the sums; ``-fno-math-errno`` lets it vectorise ``exp`` and ``log``
calls), and on x86-64 with ``-mprefer-vector-width=512`` as well.  On x86-64
Linux with GCC 12 or later it is compiled for AVX-512, AVX2 and baseline
x86-64 in one binary (``target_clones``), with ``exp`` and ``log`` from
glibc's vector math library, libmvec.  Each flag is first tried on an empty
file and left out where the compiler rejects it, so that another compiler
(one that takes none of them) still gets a plain optimised build.  When the
build fails, it is retried without libmvec (musl, an old glibc), then with
no flags of ours at all; when that fails too, the kernel is left out with a
warning (``streammix.core.kernel`` then runs the numpy code).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_LOG = logging.getLogger("streammix.setup")
_X86 = platform.machine().lower() in ("x86_64", "amd64", "x86", "i686", "i386")


def wanted_options(compiler_type: str) -> tuple[list[str], list[str]]:
    """The compile flags and libraries the kernel is built with first.

    Parameters
    ----------
    compiler_type : str
        ``compiler_type`` of the distutils compiler (``"unix"``, ``"msvc"``, ...).

    Returns
    -------
    flags, libraries : list of str
        Flags to try (each is dropped where the compiler rejects it) and the
        libraries to link (libmvec only on x86-64 Linux, where glibc has it for
        the vector variants the kernel declares).
    """
    if compiler_type == "msvc":
        return ["/O2"], []
    flags = ["-O3", "-fopenmp-simd", "-fno-math-errno"]
    if _X86:
        flags.append("-mprefer-vector-width=512")
    linux_x86_64 = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
    return flags, (["mvec", "m"] if linux_x86_64 else ["m"])


class BuildKernel(build_ext):
    """``build_ext`` that drops rejected flags and falls back step by step (see the module)."""

    def _accepts(self, flag: str) -> bool:
        """Whether the compiler compiles an empty C file with ``flag`` (and -Werror)."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "flag.c")
            with open(src, "w") as fh:
                fh.write("int streammix_flag_probe(void) { return 0; }\n")
            try:
                self.compiler.compile([src], output_dir=tmp, extra_postargs=[flag, "-Werror"])
            except Exception:  # CompileError; its module varies by setuptools
                return False
        return True

    def build_extension(self, ext):
        kind = self.compiler.compiler_type
        flags, libraries = wanted_options(kind)
        if kind != "msvc":
            flags = [flag for flag in flags if self._accepts(flag)]
        no_mvec = [("SM_NO_MVEC", "1")]
        attempts = [("the kernel's flags", flags, libraries, [])]
        if "mvec" in libraries:
            attempts.append(("scalar exp/log (no libmvec)", flags,
                             [lib for lib in libraries if lib != "mvec"], no_mvec))
        attempts.append(("a plain build (no flags of ours)", [],
                         [] if kind == "msvc" else ["m"], no_mvec))
        macros = list(ext.define_macros)
        for what, args, libs, defs in attempts:
            ext.extra_compile_args, ext.libraries, ext.define_macros = args, libs, macros + defs
            try:
                super().build_extension(ext)
            except Exception as exc:  # CompileError, LinkError: their module varies by setuptools
                _LOG.warning("building %s with %s failed (%s)", ext.name, what, exc)
                continue
            if what != attempts[0][0]:
                _LOG.warning("built %s with %s", ext.name, what)
            return
        _LOG.warning(
            "the compiled kernel %s could not be built with this C compiler; streammix will "
            "run its numpy code instead (the same results, slower)", ext.name)


setup(
    ext_modules=[
        Extension(
            "streammix.core._kernel",
            sources=["streammix/core/_kernel.c"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildKernel},
)
