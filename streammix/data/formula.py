"""Model formulas (``y ~ x1 + C(region) + x2:x3 + np.log(x4)``) as a design fixed once for all.

A formula is parsed by `formulaic <https://matthewwardrop.github.io/formulaic/>`_,
but its data-dependent state -- the levels of every categorical variable --
is learned here, over all the data, before any chunk is encoded:
:class:`LevelSet` holds the levels seen in one chunk and adds up over
chunks (a pass of the engine, or one in-memory table), and
:meth:`FormulaDesign.learned` fixes them.  Every chunk is then encoded with
the same levels, so every chunk has the same design columns, whichever
levels it happens to hold.  A level that was not learned is refused
(:class:`~streammix.DataError` naming the column and the level): it has no
coefficient.  Transforms that learn state from the data they are applied
to (formulaic's ``center``, ``scale``, splines) would learn it per chunk and
are refused; stateless ones (``np.log(x)``, ``x1:x2``, ``I(x**2)``) are fine.

A variable is categorical when it is wrapped in ``C(...)`` or when its
values are not numbers (strings, dictionary-encoded columns); booleans are
numbers (0/1), as in formulaic.  Levels are the values present, sorted;
the first is the reference level of the treatment coding.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streammix.exceptions import DataError

__all__ = ["FormulaDesign", "LevelSet", "as_table", "INTERCEPT"]

#: formulaic's name of the intercept column.
INTERCEPT = "Intercept"

_STATEFUL = re.compile(r"\b(center|scale|standardize|bs|cs|cr|cc|te|poly|hashed|lag)\(")
_IN_C = re.compile(r"\bC\(\s*(`[^`]+`|[A-Za-z_][A-Za-z_0-9.]*)")


def _formulaic():
    import formulaic
    return formulaic


def as_table(data) -> pa.Table:
    """A pandas or polars DataFrame or a pyarrow Table/RecordBatch as a pyarrow Table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        return data.to_arrow()
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"a formula needs a table (a pandas or polars DataFrame or a pyarrow "
                    f"Table), not {type(data).__name__}")


def _is_number(typ: pa.DataType) -> bool:
    return (pa.types.is_integer(typ) or pa.types.is_floating(typ)
            or pa.types.is_boolean(typ) or pa.types.is_decimal(typ))


class LevelSet:
    """The values of the categorical variables seen so far; ``a + b`` merges two.

    ``levels`` maps a column to the set of its values; ``numeric`` holds the
    candidate columns seen with a numeric type (not categorical unless in
    ``C()``), to refuse a column that is numbers in one file and strings in
    another.
    """

    def __init__(self, levels: dict | None = None, numeric: frozenset = frozenset(),
                 where: dict | None = None):
        self.levels = {k: set(v) for k, v in (levels or {}).items()}
        self.numeric = frozenset(numeric)
        self.where = dict(where or {})  # a file where each column was seen as strings

    @classmethod
    def of_table(cls, table: pa.Table, variables, in_c, where: str = "the data",
                 keep: np.ndarray | None = None) -> LevelSet:
        """The levels in ``table`` (only rows where ``keep`` is True, when given)."""
        levels, numeric, seen = {}, set(), {}
        for name in variables:
            column = table.column(name)
            if keep is not None:
                column = column.filter(pa.array(keep))
            typ = column.type
            if pa.types.is_dictionary(typ):
                column = pc.cast(column, typ.value_type)
            elif _is_number(typ) and name not in in_c:
                numeric.add(name)
                continue
            values = pc.unique(column.combine_chunks() if isinstance(column, pa.ChunkedArray)
                               else column).drop_null().to_pylist()
            levels[name] = set(values)
            seen[name] = where
        return cls(levels, frozenset(numeric), seen)

    def __add__(self, other: LevelSet) -> LevelSet:
        levels = {k: set(v) for k, v in self.levels.items()}
        for name, values in other.levels.items():
            levels.setdefault(name, set()).update(values)
        return LevelSet(levels, self.numeric | other.numeric, {**other.where, **self.where})

    def sorted_levels(self) -> dict:
        """Each categorical column's levels, sorted (a column both numbers and strings:
        DataError naming it)."""
        for name in sorted(self.numeric & set(self.levels)):
            raise DataError(f"column {name!r} holds numbers in some files and strings in "
                            f"others ({self.where.get(name, 'somewhere')}); wrap it in C() to "
                            "take it as categorical, or give it one type")
        out = {}
        for name, values in self.levels.items():
            try:
                out[name] = sorted(values)
            except TypeError:
                raise DataError(f"column {name!r} mixes values of several types "
                                f"({sorted(map(repr, values))[:5]})") from None
        return out

    def __repr__(self) -> str:
        return f"LevelSet({ {k: len(v) for k, v in self.levels.items()} })"


class FormulaDesign:
    """A formula, and once learned, the levels that fix its design columns.

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + C(region) + x2:x3 + np.log(x4)"``; the left-hand side,
        if any, must be one column (the target); ``- 1`` or ``+ 0`` removes the
        intercept.  Functions available: ``np`` (numpy) and formulaic's own.
    levels : dict, optional
        Categorical column -> its sorted levels (a learned design).

    Attributes
    ----------
    target : str or None
        The column of the left-hand side.
    variables : list of str
        The columns the right-hand side reads, in the order they appear.
    categorical_hint : frozenset of str
        The variables wrapped in ``C()``.
    """

    def __init__(self, formula: str, levels: dict | None = None):
        if not isinstance(formula, str) or "~" not in formula and not formula.strip():
            raise ValueError(f"formula must be a string such as 'y ~ x1 + C(region)', "
                             f"got {formula!r}")
        self.formula = formula.strip()
        try:
            parsed = _formulaic().Formula(self.formula)
        except Exception as exc:  # formulaic's parsing errors
            text = re.sub(r"\x1b\[[0-9;]*m|[\u29db\u29da]", "", str(exc)).strip()
            raise ValueError(f"cannot parse formula {self.formula!r}: {text}") from None
        stateful = _STATEFUL.findall(self.formula)
        if stateful:
            raise ValueError(f"formula {self.formula!r}: {stateful[0]}() learns its state "
                             "from the data it is applied to, which out of core would differ "
                             "chunk by chunk; make that column beforehand")
        lhs = getattr(parsed, "lhs", None) if hasattr(parsed, "rhs") else None
        rhs = parsed.rhs if hasattr(parsed, "rhs") else parsed
        self.target = None
        if lhs is not None:
            names = [str(t) for t in lhs]
            if len(names) != 1 or not _is_name(names[0]):
                raise ValueError(f"formula {self.formula!r}: the left-hand side must be one "
                                 f"column (the target), got {' + '.join(names)!r}; make a "
                                 "column of the transformed target first")
            self.target = names[0].strip("`")
        self._rhs = rhs
        callables = {str(v) for v in rhs.required_variables if "callable" in
                     {getattr(r, "value", r) for r in v.roles}}
        names = {str(v) for v in rhs.required_variables} - callables
        self.variables = sorted(names, key=lambda n: (_position(self.formula, n), n))
        if self.target is not None and self.target in self.variables:
            raise ValueError(f"formula {self.formula!r}: the target {self.target!r} is also "
                             "on the right-hand side")
        self.categorical_hint = frozenset(m.strip("`") for m in _IN_C.findall(self.formula)
                                          if m.strip("`") in names)
        self.levels = None if levels is None else {k: list(v) for k, v in levels.items()}
        self._spec = None
        self._columns = None
        if self.levels is not None:
            self._build()

    # ---------------------------------------------------------------- state
    @property
    def is_learned(self) -> bool:
        return self.levels is not None

    def learned(self, levels: LevelSet | dict) -> FormulaDesign:
        """This formula with its categorical levels fixed (from a :class:`LevelSet`)."""
        if isinstance(levels, LevelSet):
            levels = levels.sorted_levels()
        for name, values in levels.items():
            if not values:
                raise DataError(f"column {name!r} (categorical in formula {self.formula!r}) "
                                "has no values but nulls")
        return FormulaDesign(self.formula, levels)

    def learn(self, data, sample_weight=None) -> FormulaDesign:
        """:meth:`learned` from one in-memory table (pandas, polars, pyarrow)."""
        table = as_table(data)
        self.check_columns(table.column_names, "the data")
        return self.learned(LevelSet.of_table(table, self.variables, self.categorical_hint))

    def without_target(self) -> FormulaDesign:
        """The same design for data without the target (to predict)."""
        rhs_only = self.formula.split("~", 1)[1] if "~" in self.formula else self.formula
        return FormulaDesign("~ " + rhs_only.strip(), self.levels)

    @property
    def columns(self) -> list[str]:
        """The design columns, the intercept included (learned designs only)."""
        self._require_learned()
        return list(self._columns)

    @property
    def intercept(self) -> bool:
        """Whether the formula keeps the intercept (``- 1`` / ``+ 0`` remove it)."""
        return INTERCEPT in self.columns

    @property
    def feature_names(self) -> list[str]:
        """The design columns without the intercept: the model's ``feature_names_in_``."""
        return [c for c in self.columns if c != INTERCEPT]

    @property
    def categorical(self) -> list[str]:
        self._require_learned()
        return sorted(self.levels)

    def to_record(self) -> dict:
        """A JSON-ready record (formula, levels, design columns)."""
        self._require_learned()
        return {"formula": self.formula, "levels": {k: list(v) for k, v in self.levels.items()},
                "columns": self.columns}

    @classmethod
    def from_record(cls, record: dict) -> FormulaDesign:
        design = cls(record["formula"], record["levels"])
        if design.columns != list(record["columns"]):
            raise ValueError(f"formula {design.formula!r} with the stored levels gives columns "
                             f"{design.columns}, the record has {list(record['columns'])}")
        return design

    def __eq__(self, other) -> bool:
        return (isinstance(other, FormulaDesign) and self.formula == other.formula
                and self.levels == other.levels)

    def __hash__(self) -> int:
        return hash(self.formula)

    def __repr__(self) -> str:
        learned = "" if self.levels is None else \
            f", levels={ {k: len(v) for k, v in self.levels.items()} }"
        return f"FormulaDesign({self.formula!r}{learned})"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_spec"] = None  # re-made where unpickled
        state["_rhs"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------- encoding
    def check_columns(self, available, where: str = "the data", need_target: bool = True):
        """Refuse data that lacks a column the formula reads (DataError naming it)."""
        available = [str(c) for c in available]
        wanted = list(self.variables)
        if need_target and self.target is not None:
            wanted.append(self.target)
        for name in wanted:
            if name not in available:
                raise DataError(f"{where} has no column {name!r}, which formula "
                                f"{self.formula!r} reads (it has {', '.join(available)})")

    def encode(self, table: pa.Table, where: str = "the data", row_ids=None):
        """The design of ``table`` without the intercept column, and the bad rows.

        Returns ``(X, bad)``: X an F-ordered float64 (n, d) matrix; ``bad`` a
        boolean mask of rows with a null or non-finite variable or design
        value (None if none), with a message naming the first such column.
        A level not learned raises DataError naming the column and level.
        """
        self._require_learned()
        n = table.num_rows
        row_ids = np.arange(n) if row_ids is None else row_ids
        frame, bad, message = self._frame(table, where, row_ids)
        X = np.empty((n, len(self.feature_names)), order="F")
        if n:
            with np.errstate(all="ignore"):
                mm = self._get_spec().get_model_matrix(frame, context={"np": np},
                                                       na_action="ignore")
            got = [str(c) for c in mm.columns]
            if got != self.columns:
                raise DataError(f"{where}: formula {self.formula!r} gave columns {got}, "
                                f"expected {self.columns}")
            for k, name in enumerate(self.feature_names):
                X[:, k] = np.asarray(mm[name], dtype=np.float64)
            finite = np.isfinite(X)
            if not finite.all():
                rows = ~finite.all(axis=1)
                if message is None:
                    col = self.feature_names[int(np.flatnonzero(~finite.all(axis=0))[0])]
                    first = int(row_ids[np.flatnonzero(rows)[0]])
                    message = (f"{where}: design column {col!r} of formula {self.formula!r} "
                               f"has {int(rows.sum())} NaN or infinite values, first at row "
                               f"{first}")
                bad = rows if bad is None else bad | rows
        return X, bad, message

    def _frame(self, table: pa.Table, where: str, row_ids):
        import pandas as pd
        columns, bad, message = {}, None, None
        for name in self.variables:
            column = table.column(name)
            if pa.types.is_dictionary(column.type):
                column = pc.cast(column, column.type.value_type)
            null = column.is_null().to_numpy(zero_copy_only=False) if column.null_count \
                else None
            if name in self.levels:
                levels = self.levels[name]
                values = column.to_pylist()
                known = set(levels)
                unseen = sorted({v for v in values if v is not None and v not in known},
                                key=repr)
                if unseen:
                    first = int(row_ids[next(i for i, v in enumerate(values) if v == unseen[0])])
                    raise DataError(
                        f"{where}: column {name!r} has level {unseen[0]!r} (first at row "
                        f"{first}), not seen in the fit (levels "
                        f"{', '.join(map(repr, levels[:10]))}{', ...' if len(levels) > 10 else ''}"
                        f"){f'; {len(unseen)} unseen levels in all' if len(unseen) > 1 else ''}:"
                        " a level without a coefficient cannot be predicted; refit with data "
                        "holding it, or drop or map these rows")
                if null is not None:  # rows marked bad; encoded as a level, not as NaN
                    values = [levels[0] if v is None else v for v in values]
                columns[name] = pd.Categorical(values, categories=levels)
            else:
                if not _is_number(column.type):
                    raise DataError(f"{where}: column {name!r} has type {column.type}; the fit "
                                    "took it as numbers (wrap it in C() to make it categorical)")
                values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
                values = np.asarray(values, dtype=np.float64)
                nonfinite = ~np.isfinite(values)
                null = nonfinite if null is None else (null | nonfinite)
                columns[name] = values
            if null is not None and null.any():
                if message is None:
                    first = int(row_ids[np.flatnonzero(null)[0]])
                    message = (f"{where}: column {name!r} has {int(null.sum())} null, NaN or "
                               f"infinite values, first at row {first}")
                bad = null if bad is None else bad | null
        return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows)), bad, message

    def _require_learned(self) -> None:
        if self.levels is None:
            raise RuntimeError(f"the levels of formula {self.formula!r} are not learned yet "
                               "(fit learns them in its first pass)")

    def _get_spec(self):
        if self._spec is None:
            self._build()
        return self._spec

    def _build(self) -> None:
        """The formulaic model spec, made on a prototype holding every level."""
        import pandas as pd
        if getattr(self, "_rhs", None) is None:
            parsed = _formulaic().Formula(self.formula)
            self._rhs = parsed.rhs if hasattr(parsed, "rhs") else parsed
        n = max([1] + [len(v) for v in self.levels.values()])
        proto = {}
        for name in self.variables:
            if name in self.levels:
                levels = self.levels[name]
                proto[name] = pd.Categorical([levels[i % len(levels)] for i in range(n)],
                                             categories=levels)
            else:
                proto[name] = np.ones(n)
        try:
            with np.errstate(all="ignore"):
                mm = _formulaic().model_matrix(self._rhs, pd.DataFrame(proto),
                                               na_action="ignore", context={"np": np})
        except Exception as exc:  # formulaic's evaluation errors name the term
            raise ValueError(f"formula {self.formula!r}: {exc}") from None
        state = mm.model_spec.transform_state
        if state:
            raise ValueError(f"formula {self.formula!r}: {', '.join(sorted(state))} learns "
                             "its state from the data it is applied to, which out of core "
                             "would differ chunk by chunk; make that column beforehand")
        self._spec = mm.model_spec
        self._columns = [str(c) for c in mm.columns]


def _is_name(text: str) -> bool:
    text = text.strip()
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z_0-9.]*|`[^`]+`", text))


def _position(formula: str, name: str) -> int:
    found = re.search(r"(?<![A-Za-z_0-9.])" + re.escape(name) + r"(?![A-Za-z_0-9])", formula)
    return found.start() if found else len(formula)
