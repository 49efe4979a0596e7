"""A formula's design columns from Parquet chunks: the levels pass and the encoding.

:class:`~streammix.ParquetSource` with ``formula=`` reads the columns its
formula names (:mod:`streammix.data.formula`) and encodes each chunk with
the levels learned over the whole lake: :meth:`FormulaReadingMixin.learn_levels`
is one pass of an engine whose chunks give the :class:`LevelSet` of their
rows (after filters, without the rows a fit drops), summed over the lake.
Files that each hold only some levels therefore give the same design
columns as the lake read at once.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streammix.data.formula import INTERCEPT, FormulaDesign, LevelSet
from streammix.exceptions import DataError

__all__ = ["FormulaReadingMixin", "LevelsView", "concomitant_columns"]

logger = logging.getLogger(__name__)


class FormulaReadingMixin:
    """The formula side of :class:`~streammix.ParquetSource` (its ``_design``)."""

    @staticmethod
    def _formula_design(formula, target, features) -> FormulaDesign:
        if target is not None or features is not None:
            raise ValueError("with formula=, the target and the features come from the "
                             "formula; do not give target= or features=")
        return formula if isinstance(formula, FormulaDesign) else FormulaDesign(formula)

    @property
    def formula_design(self) -> FormulaDesign | None:
        """The formula's design (learned once :meth:`learn_levels` ran), or None."""
        return self._design

    @property
    def concomitant_design(self) -> FormulaDesign | None:
        """The gate formula's design (``concomitant="~ z1 + C(segment)"``), or None."""
        return getattr(self, "_gate", None)

    def _designs(self) -> list[FormulaDesign]:
        return [d for d in (getattr(self, "_design", None), getattr(self, "_gate", None))
                if d is not None]

    def _gate_names(self) -> list[str]:
        return self._gate.feature_names if self._gate.is_learned else list(self._gate.variables)

    def learn_levels(self, engine=None) -> FormulaDesign | None:
        """Learn the levels of the categorical variables of the formula and of the gate
        formula in one pass.

        Runs on ``engine`` (any streammix engine; default in-process); a
        design already learned is kept.  Afterwards ``features`` are the
        formula's design columns, and ``concomitant_names`` the gate's.
        Returns the formula's design (None with a gate formula only).
        """
        if not self._designs():
            raise ValueError("this source has no formula")
        if not all(design.is_learned for design in self._designs()):
            from streammix.engines.inprocess import InProcessEngine
            engine = InProcessEngine() if engine is None else engine
            levels = engine.map_reduce(LevelsView(self), _identity, LevelSet())
            if self._design is not None and not self._design.is_learned:
                self._design = self._design.learned(_levels_of(levels, self._design))
                self.features = self._design.feature_names
            if self._gate is not None and not self._gate.is_learned:
                self._gate = _checked_gate(self._gate.learned(_levels_of(levels, self._gate)))
            for design in self._designs():
                logger.info("formula %s: levels %s", design.formula,
                            {k: len(v) for k, v in design.levels.items()})
        return self._design

    def with_formula(self, formula, *, keep_target: bool = True):
        """The same files, filters and options read through ``formula`` (a string or a
        learned :class:`~streammix.data.formula.FormulaDesign`); ``keep_target=False``
        reads no target (to predict data without it)."""
        design = formula if isinstance(formula, FormulaDesign) else FormulaDesign(formula)
        if not keep_target:
            design = design.without_target()
        return type(self)(self.path_or_url, formula=design, weight=self.weight,
                          filters=self.filters, storage_options=self.storage_options,
                          chunk_rows=self.chunk_rows, on_invalid=self.on_invalid,
                          concomitant=self._gate or self.concomitant or None,
                          groups=getattr(self, "groups", None),
                          max_task_rows=getattr(self, "max_task_rows", None),
                          format=getattr(self, "format", None))

    def _formula_rows(self, piece, table, row_ids, bad, design=None):
        """The design matrix of a chunk's rows (of the formula, or ``design``: the gate's)
        and the mask of rows to drop."""
        design = self._design if design is None else design
        if not design.is_learned:
            raise DataError(f"the levels of formula {design.formula!r} are not learned yet: "
                            "call learn_levels() (fit does) before reading chunks, or give "
                            "a learned design (a model's formula_ or concomitant_formula_)")
        X, design_bad, message = design.encode(table, self.shown(piece.path), row_ids)
        if design_bad is not None:
            if self.on_invalid == "error":
                raise DataError(message)
            bad = design_bad if bad is None else bad | design_bad
        return X, bad

    def _formula_invalid(self, piece, table, bad, counts: dict):
        """The rows a fit drops for the formula's columns, and the counts by column.

        ``bad`` and ``counts`` are those of the target, weight and concomitant
        columns; added are the null (and, for numbers, NaN or infinite) values
        of every column the formula reads, then the NaN or infinite values of
        its design columns (``np.log(x)`` of x <= 0) on the rows still kept.
        """
        counts = dict(counts)
        for design in self._designs():
            bad = self._design_invalid(design, piece, table, bad, counts)
        return bad, counts

    def _design_invalid(self, design, piece, table, bad, counts: dict):
        """:meth:`_formula_invalid` of one design: adds to ``counts``, returns ``bad``."""
        for name in design.variables:
            column = table.column(name)
            if pa.types.is_dictionary(column.type):
                column = pc.cast(column, column.type.value_type)
            col_bad = column.is_null().to_numpy(zero_copy_only=False)
            if name not in design.levels and pa.types.is_floating(column.type):
                values = column.to_numpy(zero_copy_only=False)
                col_bad = col_bad | ~np.isfinite(np.asarray(values, dtype=np.float64))
            if col_bad.any():
                counts[name] = counts.get(name, 0) + int(col_bad.sum())
                bad = col_bad if bad is None else bad | col_bad
        keep = np.ones(table.num_rows, bool) if bad is None else ~bad
        X, _, _ = design.encode(table.filter(pa.array(keep)), self.shown(piece.path))
        nonfinite = ~np.isfinite(X)
        for k in np.flatnonzero(nonfinite.any(axis=0)):
            name = design.feature_names[k]
            counts[name] = counts.get(name, 0) + int(nonfinite[:, k].sum())
        if nonfinite.any():
            rows = np.flatnonzero(keep)[nonfinite.any(axis=1)]
            bad = np.zeros(table.num_rows, bool) if bad is None else bad.copy()
            bad[rows] = True
        return bad


class LevelsView:
    """A source seen through :meth:`FormulaReadingMixin.learn_levels`: chunks read as
    the :class:`LevelSet` of their kept rows."""

    def __init__(self, source):
        self.source = source

    def plan(self):
        return self.source.plan()

    def read(self, piece) -> LevelSet:
        source = self.source
        _, _, bad, _, table = source._read_values(piece, on_invalid="drop", with_table=True)
        variables = list(dict.fromkeys(v for d in source._designs() for v in d.variables))
        hint = frozenset().union(*(d.categorical_hint for d in source._designs()))
        return LevelSet.of_table(table, variables, hint, source.shown(piece.path),
                                 None if bad is None else ~bad)

    def __repr__(self) -> str:
        return f"LevelsView({self.source!r})"


def _identity(value):
    return value


def _levels_of(levels: LevelSet, design: FormulaDesign) -> LevelSet:
    """The part of ``levels`` that ``design`` reads."""
    names = set(design.variables)
    return LevelSet({k: v for k, v in levels.levels.items() if k in names},
                    levels.numeric & names, {k: v for k, v in levels.where.items() if k in names})


def _checked_gate(design: FormulaDesign) -> FormulaDesign:
    if INTERCEPT not in design.columns:
        raise ValueError(f"concomitant formula {design.formula!r} removes the intercept; the "
                         "gate always has one (with treatment coding of the levels)")
    return design


def concomitant_columns(concomitant, target, weight):
    """``(gate, names)`` of ParquetSource's ``concomitant``: a gate formula
    (``"~ z1 + C(segment)"`` or a learned design; names then empty) or the names of
    numeric z columns (gate None)."""
    if concomitant is None:
        return None, []
    if isinstance(concomitant, FormulaDesign) or (isinstance(concomitant, str)
                                                  and "~" in concomitant):
        gate = concomitant if isinstance(concomitant, FormulaDesign) else \
            FormulaDesign(concomitant)
        if gate.target is not None:
            raise ValueError(f"concomitant formula {gate.formula!r} has a left-hand side; a "
                             "gate formula is '~ z1 + C(segment)'")
        if not gate.variables:  # '~ 1': a gate of intercepts only is the plain mixture
            raise ValueError(f"concomitant formula {gate.formula!r} reads no column")
        if {target, weight} & set(gate.variables):
            raise ValueError("target and weight must not be among the concomitant columns")
        return (_checked_gate(gate) if gate.is_learned else gate), []
    names = [concomitant] if isinstance(concomitant, str) else [str(c) for c in concomitant]
    if len(set(names)) != len(names):
        raise ValueError(f"concomitant has repeated names: {names}")
    if target in names or (weight is not None and weight in names):
        raise ValueError("target and weight must not be among the concomitant columns")
    return None, names
