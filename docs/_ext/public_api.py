"""A Sphinx directive that documents every name of ``streammix.__all__``.

``.. public-api::`` expands to one section per group of names, and in each an
``autoclass`` / ``autoexception`` / ``autofunction`` of ``streammix.<name>``,
so the reference shows the public top-level paths users import, and follows
``__all__`` when names are added or modules move.  Groups are chosen by name
and kind; a name no group claims lands in "Other names".
"""

from __future__ import annotations

import importlib
import inspect

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

#: (title, text, predicate(name, obj)) in page order; the first match wins.
GROUPS = (
    ("The estimator", "Fit, predict, score, save and load; online EM; inference.",
     lambda name, obj: name == "MixtureOfLinearRegressions"),
    ("Choosing the number of components", "Every k fitted in the same scans of the data.",
     lambda name, obj: name in ("select_components", "SelectionResult")),
    ("Errors and warnings", "Everything streammix raises or warns on purpose.",
     lambda name, obj: inspect.isclass(obj) and issubclass(obj, BaseException)),
    ("Data sources", "Where the rows come from: a plan of small chunk descriptors and a "
     "reader for each.",
     lambda name, obj: name.endswith("Source") or "Stream" in name),
    ("Engines", "Where the map-reduce of a pass runs.",
     lambda name, obj: name.endswith("Engine")),
    ("Parameters and statistics", "The numpy core: parameter sets, mergeable sufficient "
     "statistics and the E-step that makes them.",
     lambda name, obj: name in ("MixtureParams", "SuffStats", "estep")),
)


def _directive(name: str, obj) -> list[str]:
    target = f"streammix.{name}"
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return [f".. autoexception:: {target}", "   :show-inheritance:", ""]
    if inspect.isclass(obj):
        return [f".. autoclass:: {target}", "   :members:", "   :inherited-members:", ""]
    if callable(obj):
        return [f".. autofunction:: {target}", ""]
    return [f".. autodata:: {target}", "   :no-value:", ""]


def public_api_lines(module_name: str = "streammix") -> list[str]:
    """The reStructuredText of the reference: sections of autodoc directives."""
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    groups: dict[str, list[str]] = {title: [] for title, _, _ in GROUPS}
    other: list[str] = []
    for name in names:
        obj = getattr(module, name)
        for title, _, claims in GROUPS:
            if claims(name, obj):
                groups[title].append(name)
                break
        else:
            other.append(name)
    texts = {title: text for title, text, _ in GROUPS}
    sections = [(title, texts[title], members) for title, members in groups.items()]
    sections.append(("Other names", "", other))
    lines: list[str] = []
    for title, text, members in sections:
        if not members:
            continue
        lines += [title, "-" * len(title), ""]
        if text:
            lines += [text, ""]
        for name in members:
            lines += _directive(name, getattr(module, name))
    return lines


class PublicAPI(SphinxDirective):
    """``.. public-api::`` -- the reference of ``streammix.__all__``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        source = self.get_source_info()[0]
        content = StringList()
        for i, line in enumerate(public_api_lines()):
            content.append(line, source, i)
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, content, container)
        return container.children


def setup(app):
    app.add_directive("public-api", PublicAPI)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
