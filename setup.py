"""Build of the optional compiled kernel (``streammix.core._kernel``).

Everything else about the package is in ``pyproject.toml``.  The kernel is
an optional extension: where it cannot be compiled (no C compiler, an
unusual platform) the build goes on without it and ``streammix`` uses its
numpy E-step, which gives the same results to rounding.

On x86-64 Linux with GCC 12 or later the kernel is compiled for AVX-512,
AVX2 and baseline x86-64 in one binary (``target_clones``), with ``exp`` and
``log`` from glibc's vector math library, libmvec.  Where libmvec is missing
(musl, an old glibc) the build is retried with scalar ``exp`` and ``log``.
"""

from __future__ import annotations

import logging
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_X86_LINUX = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")

if _X86_LINUX:
    _ARGS = ["-O3", "-fopenmp-simd", "-fno-math-errno", "-mprefer-vector-width=512"]
    _LIBS = ["mvec", "m"]
elif sys.platform == "win32":
    _ARGS, _LIBS = ["/O2"], []
else:
    _ARGS, _LIBS = ["-O3", "-fno-math-errno"], ["m"]


class BuildKernel(build_ext):
    """``build_ext`` that retries without libmvec when linking with it fails."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError: their module varies by setuptools
            if "mvec" not in ext.libraries:
                raise
            logging.getLogger(__name__).warning(
                "building %s with libmvec failed (%s); retrying with scalar exp/log",
                ext.name, exc)
            ext.libraries = [lib for lib in ext.libraries if lib != "mvec"]
            ext.define_macros = [*ext.define_macros, ("SM_NO_MVEC", "1")]
            super().build_extension(ext)


setup(
    ext_modules=[
        Extension(
            "streammix.core._kernel",
            sources=["streammix/core/_kernel.c"],
            extra_compile_args=_ARGS,
            libraries=_LIBS,
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildKernel},
)
