"""Build of the optional compiled E-step kernel (``streammix._kernel``).

Everything else about the package is in ``pyproject.toml``.  The kernel is
an optional extension: where it cannot be compiled (no C compiler, an
unusual platform) the build goes on without it and ``streammix`` uses its
numpy E-step, which gives the same results to rounding.

On x86-64 Linux with GCC the kernel is compiled for AVX-512, AVX2 and
baseline x86-64 in one binary (``target_clones``), with ``exp`` and ``log``
from glibc's vector math library, libmvec.
"""

from __future__ import annotations

import platform
import sys

from setuptools import Extension, setup

_X86_LINUX = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")

if _X86_LINUX:
    _ARGS = ["-O3", "-fopenmp-simd", "-fno-math-errno", "-mprefer-vector-width=512"]
    _LIBS = ["mvec", "m"]
elif sys.platform == "win32":
    _ARGS, _LIBS = ["/O2"], []
else:
    _ARGS, _LIBS = ["-O3", "-fno-math-errno"], ["m"]

setup(
    ext_modules=[
        Extension(
            "streammix._kernel",
            sources=["streammix/_kernel.c"],
            extra_compile_args=_ARGS,
            libraries=_LIBS,
            optional=True,
        )
    ],
)
