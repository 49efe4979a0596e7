"""The user guide's promise "every Python example on these pages runs as shown", checked
for the pages listed here: their ``code-block:: python`` blocks run in order, in one
namespace, in an empty folder.  Not listed: arrays.rst (about 20 s), clusters.rst (starts
clusters), lakes.rst (its concomitant example uses ``ParquetSource`` and columns z1, z2
that the page does not make; its first four blocks, the CSV lake included, run)."""

from __future__ import annotations

import re

import pytest
from support import ROOT

#: Pages whose examples run in a few seconds, and outputs they show in their comments.
PAGES = {
    "formulas.rst": ["['x1', 'C(region)[T.b]', 'C(region)[T.c]', 'x2:x3']",
                     "{'region': ['a', 'b', 'c']}",
                     "['z1', 'C(segment)[T.q]', 'C(segment)[T.r]']"],
    "inference.rst": [],
    "options.rst": [],
    "selection.rst": [],
    "grouped.rst": [],
    "streams.rst": [],
}


def python_blocks(text: str) -> list[str]:
    """The code of each ``.. code-block:: python`` block (its indentation removed)."""
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text, re.M)
    return ["\n".join(line[3:] for line in block.splitlines()) for block in blocks]


@pytest.mark.parametrize("page", PAGES)
def test_the_examples_of_a_guide_page_run_as_shown(page, tmp_path, monkeypatch, capsys):
    blocks = python_blocks((ROOT / "docs" / "guide" / page).read_text(encoding="utf-8"))
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"guide_{page}"}
    for k, code in enumerate(blocks):
        exec(compile(code, f"docs/guide/{page}, block {k + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    for shown in PAGES[page]:
        assert shown in out
