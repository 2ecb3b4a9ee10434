"""A tiny Sphinx extension that keeps the docs in step with the code.

- ``.. spark-config-table::`` renders every key of :data:`flask_spark.core.config.DEFAULTS` (key ->
  (default, doc)) as a table, each key a ``confval`` target that ``:confval:`SPARK_X``` links to.
  (Sphinx itself warns about a ``:confval:`` reference to a key that does not exist, so with
  ``-W`` a renamed or removed key cannot linger in the prose.)
- ``.. spark-names-table:: dotted.path.TO_NAMES`` renders a two-column table of names and their
  descriptions (the directive's content, one ``name: description`` line each) and warns when the
  content and the names in the code differ: a sandbox fault or counter added, renamed or removed
  without the docs following fails the build.
- Every name in ``flask_spark.__all__`` must be documented as ``flask_spark.<name>``: a public
  name added without documentation fails the build too.
- ``.. spark-optional-figure:: path`` is a ``figure`` shown only when the image file exists
  (the screenshots are made by the browser test), and nothing otherwise.
- A literal ``tests/<file>.py::<test>`` (how the security model page cites its proofs) must name
  a test function that exists: a renamed or deleted test cannot leave a row unproven silently.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

_TICKS = re.compile(r"`([^`]+)`")
_TEST_ID = re.compile(r"^(tests/[\w/]+\.py)::(test_\w+)(\[[^\]]*\])?$")
_REPO = Path(__file__).resolve().parents[2]


def _default_text(value: Any) -> str:
    """How a default reads in the table (``None`` means "no default": required or derived)."""
    if value is None:
        return ""
    return repr(value)


def _prose(text: str) -> list[nodes.Node]:
    """A DEFAULTS doc string as nodes: `backticks` become literals, the rest stays plain text."""
    out: list[nodes.Node] = []
    position = 0
    for match in _TICKS.finditer(text):
        if match.start() > position:
            out.append(nodes.Text(text[position : match.start()]))
        out.append(nodes.literal(match.group(1), match.group(1)))
        position = match.end()
    if position < len(text):
        out.append(nodes.Text(text[position:]))
    return out


class SparkConfigTable(SphinxDirective):
    """``.. spark-config-table::`` with an optional ``:only:`` list of keys."""

    has_content = False
    option_spec = {"only": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        from flask_spark.core import config
        from flask_spark.core.config import DEFAULTS

        self.env.note_dependency(config.__file__)  # re-read this page when the keys change
        wanted = self.options.get("only")
        keys = list(DEFAULTS)
        if wanted:
            names = wanted.replace(",", " ").split()
            unknown = [name for name in names if name not in DEFAULTS]
            if unknown:
                logger.warning(
                    "spark-config-table: unknown keys %s",
                    ", ".join(unknown),
                    location=self.get_location(),
                )
            keys = [name for name in names if name in DEFAULTS]

        table = nodes.table(classes=["spark-config", "colwidths-given"])
        group = nodes.tgroup(cols=2)
        table += group
        group += nodes.colspec(colwidth=42)
        group += nodes.colspec(colwidth=58)
        head = nodes.thead()
        group += head
        head += self._row([nodes.Text("Key and default")], [nodes.Text("Meaning")])
        body = nodes.tbody()
        group += body
        std = self.env.domains.standard_domain
        for key in keys:
            default, doc = DEFAULTS[key]
            node_id = f"confval-{key.lower().replace('_', '-')}"
            target = nodes.target("", "", ids=[node_id])
            self.state.document.note_explicit_target(target)
            std.note_object("confval", key, node_id, location=self.get_location())
            row = self._row([target, nodes.strong("", "", nodes.literal(key, key))], _prose(doc))
            shown = _default_text(default)
            if shown:
                extra = nodes.paragraph("", "default ", nodes.literal(shown, shown))
            else:
                extra = nodes.paragraph("", "", nodes.emphasis("no default", "no default"))
            row[0] += extra
            body += row
        return [table]

    @staticmethod
    def _row(*cells: list[nodes.Node]) -> nodes.row:
        row = nodes.row()
        for content in cells:
            entry = nodes.entry()
            paragraph = nodes.paragraph()
            paragraph.extend(content)
            entry += paragraph
            row += entry
        return row


def _names_at(path: str) -> list[str]:
    """The names held at ``path``: a collection's items, a mapping's keys, a dataclass's fields."""
    module_name, _, attribute = path.rpartition(".")
    value = getattr(importlib.import_module(module_name), attribute)
    return _names_of(value)


def _names_of(value: Any) -> list[str]:
    if dataclasses.is_dataclass(value):
        return [f.name for f in dataclasses.fields(value)]
    if isinstance(value, Mapping):
        return [str(k) for k in value]
    return [str(v) for v in value]


class SparkNamesTable(SphinxDirective):
    """``.. spark-names-table:: module.NAMES`` with ``name: description`` lines as content."""

    required_arguments = 1
    has_content = True
    option_spec = {"header": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        path = self.arguments[0]
        module_name = path.rpartition(".")[0]
        self.env.note_dependency(importlib.import_module(module_name).__file__ or "")
        actual = _names_at(path)
        rows: list[tuple[str, str, int]] = []
        for offset, line in enumerate(self.content):
            if not line.strip():
                continue
            name, _, text = line.partition(":")
            rows.append((name.strip(), text.strip(), self.content_offset + offset))
        given = [name for name, _, _ in rows]
        undocumented = [n for n in actual if n not in given]
        stale = [n for n in given if n not in actual]
        if undocumented or stale:
            logger.warning(
                "spark-names-table %s is out of step with the code: undocumented %s, not in "
                "the code %s",
                path,
                undocumented or "none",
                stale or "none",
                location=self.get_location(),
            )
        head_left, _, head_right = self.options.get("header", "Name, Meaning").partition(",")
        table = nodes.table()
        group = nodes.tgroup(cols=2)
        table += group
        group += nodes.colspec(colwidth=30)
        group += nodes.colspec(colwidth=70)
        head = nodes.thead()
        group += head
        head += SparkConfigTable._row(
            [nodes.Text(head_left.strip())], [nodes.Text(head_right.strip())]
        )
        body = nodes.tbody()
        group += body
        for name, text, lineno in rows:
            parsed, messages = self.state.inline_text(text, lineno)
            body += SparkConfigTable._row([nodes.literal(name, name)], [*parsed, *messages])
        return [table]


class OptionalFigure(SphinxDirective):
    """``.. spark-optional-figure:: _static/x.png`` (``:alt:``, ``:width:``, a caption)."""

    required_arguments = 1
    has_content = True
    option_spec = {"alt": directives.unchanged, "width": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        image = self.arguments[0]
        _, path = self.env.relfn2path(image, self.env.docname)
        self.env.note_dependency(path)  # re-read once it appears (or disappears)
        if not Path(path).is_file():
            return []
        lines = [f".. figure:: {image}"]
        lines += [f"   :{name}: {value}" for name, value in self.options.items()]
        lines += ["", *(f"   {line}" for line in self.content)]
        holder = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0, holder)
        return list(holder.children)


def _check_public_api(app: Sphinx, env: BuildEnvironment) -> None:
    """Every ``flask_spark.__all__`` name must be documented (autodoc or ``py:`` directive)."""
    import flask_spark

    documented = set(env.domains.python_domain.objects)
    missing = [n for n in flask_spark.__all__ if f"flask_spark.{n}" not in documented]
    if missing:
        logger.warning(
            "public names of flask_spark not documented in the API reference: %s",
            ", ".join(missing),
        )


def _check_test_ids(app: Sphinx, doctree: nodes.document) -> None:
    """Warn about cited tests (``tests/x.py::test_y``) that do not exist."""
    for literal in doctree.findall(nodes.literal):
        match = _TEST_ID.match(literal.astext())
        if match is None:
            continue
        path, name = _REPO / match.group(1), match.group(2)
        app.env.note_dependency(str(path))  # re-check when the test file changes
        source = path.read_text(encoding="utf-8") if path.is_file() else ""
        if not re.search(rf"^(async )?def {name}\(", source, re.MULTILINE):
            logger.warning("cited test %s does not exist", literal.astext(), location=literal)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive and the checks."""
    app.add_directive("spark-config-table", SparkConfigTable)
    app.add_directive("spark-names-table", SparkNamesTable)
    app.add_directive("spark-optional-figure", OptionalFigure)
    app.connect("env-check-consistency", _check_public_api)
    app.connect("doctree-read", _check_test_ids)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
