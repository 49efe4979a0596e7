"""The architecture page lists every module of the package (its promise: "where each
kind of new code goes" needs every module on the map)."""

from __future__ import annotations

import collections
import re

from support import ROOT


def test_every_module_is_on_the_architecture_page():
    page = (ROOT / "docs" / "architecture.rst").read_text(encoding="utf-8")
    layers = page.split("The layers", 1)[1].split("**Imports run one way**", 1)[0]
    package = ROOT / "streammix"
    modules = sorted(p.relative_to(package) for p in package.rglob("*")
                     if p.suffix in (".py", ".c") and p.name != "__init__.py"
                     and "__pycache__" not in p.parts)
    assert len(modules) > 50
    by_name = collections.Counter(p.name for p in modules)
    missing = [str(p) for p in modules
               if len(re.findall(r"(?<![\w.])" + re.escape(p.name) + r"\b", layers))
               < by_name[p.name]]
    assert not missing, f"modules not on docs/architecture.rst: {missing}"


def test_every_python_module_is_small():
    """Modules stay small (the page's map is of modules whose names say what they
    hold): at most 500 lines each."""
    package = ROOT / "streammix"
    sizes = {str(p.relative_to(package)): len(p.read_text(encoding="utf-8").splitlines())
             for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    assert len(sizes) > 50
    large = {name: lines for name, lines in sizes.items() if lines > 500}
    assert not large, f"modules over 500 lines (split them by what they hold): {large}"
