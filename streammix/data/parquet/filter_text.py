"""A row filter written as text, turned into pyarrow's disjunctive normal form.

The syntax (``streammix fit --filter``, ``ParquetSource(filters="...")``)::

    filter     := conjunction ("or" conjunction)*
    conjunction:= comparison ("and" comparison)*
    comparison := column op literal
                | column ["not"] "in" "(" literal ("," literal)* ")"
    op         := "==" | "=" | "!=" | "<" | "<=" | ">" | ">="
    column     := a name of letters, digits, "_" and "." | a name in `backticks`
    literal    := a number | 'text' | "text" | true | false

``and`` binds tighter than ``or``, as in SQL and Python; keywords are not
case-sensitive.  Parentheses group only the values of ``in``, so every
filter is already in disjunctive normal form: a list of conjunctions, each a
list of ``(column, op, value)`` tuples, which is what pyarrow's
``filters_to_expression`` takes.  Partition columns of a hive lake
(``region=a/``) are filtered like the others, and pyarrow then skips whole
files (partition pruning) as well as row groups whose statistics exclude
them.

Examples: ``"year >= 2020"``, ``"region in ('a','b') and year >= 2020"``,
``"`unit price` < 9.5 or flag == true"``.
"""

from __future__ import annotations

import re

__all__ = ["parse_filter"]

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`[^`]+`)
  | (?P<op>==|!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
""", re.VERBOSE)

_KEYWORDS = {"and", "or", "not", "in", "true", "false"}


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"filter {text!r}: unexpected {text[pos]!r} at column {pos + 1}")
        kind = match.lastgroup
        if kind != "space":
            value = match.group()
            if kind == "word" and value.lower() in _KEYWORDS:
                kind, value = value.lower(), value.lower()
            out.append((kind, value, pos))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def fail(self, expected: str):
        if self.i < len(self.tokens):
            kind, value, pos = self.tokens[self.i]
            found = f"{value!r} at column {pos + 1}"
        else:
            found = "the end"
        raise ValueError(f"filter {self.text!r}: expected {expected}, found {found}")

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self, *kinds: str, expected: str) -> str:
        if self.peek() not in kinds:
            self.fail(expected)
        value = self.tokens[self.i][1]
        self.i += 1
        return value

    def punct(self, char: str, expected: str | None) -> bool:
        """Take ``char``; without it, fail (or return False when ``expected`` is None)."""
        if self.peek() == "punct" and self.tokens[self.i][1] == char:
            self.i += 1
            return True
        if expected is not None:
            self.fail(expected)
        return False

    def parse(self) -> list[list[tuple]]:
        if not self.tokens:
            raise ValueError("filter is empty")
        disjunction = [self.conjunction()]
        while self.peek() == "or":
            self.i += 1
            disjunction.append(self.conjunction())
        if self.peek() is not None:
            self.fail("'and', 'or' or the end")
        return disjunction

    def conjunction(self) -> list[tuple]:
        terms = [self.comparison()]
        while self.peek() == "and":
            self.i += 1
            terms.append(self.comparison())
        return terms

    def comparison(self) -> tuple:
        column = self.take("word", "quoted", expected="a column name")
        if column.startswith("`"):
            column = column[1:-1]
        if self.peek() in ("in", "not"):
            negated = self.take("in", "not", expected="'in'") == "not"
            if negated:
                self.take("in", expected="'in' after 'not'")
            self.punct("(", expected="'(' after 'in'")
            values = [self.literal()]
            while self.punct(",", expected=None):
                values.append(self.literal())
            self.punct(")", expected="',' or ')'")
            return (column, "not in" if negated else "in", values)
        op = self.take("op", expected="a comparison (==, !=, <, <=, >, >=, in, not in)")
        return (column, "==" if op == "=" else op, self.literal())

    def literal(self):
        kind = self.peek()
        value = self.take("number", "string", "true", "false",
                          expected="a value (a number, 'text', true or false)")
        if kind == "number":
            return float(value) if any(c in value for c in ".eE") else int(value)
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", value[1:-1])
        return kind == "true"


def parse_filter(text: str) -> list[list[tuple]]:
    """The disjunctive normal form of a filter written as text (see the module docs).

    Parameters
    ----------
    text : str
        For example ``"region in ('a','b') and year >= 2020"``.

    Returns
    -------
    list of list of tuple
        ``[[(column, op, value), ...], ...]``: the conjunctions joined by "or".

    Raises
    ------
    ValueError
        Naming the filter, what was expected and where (the column of the
        character in the text).
    """
    return _Parser(text).parse()
