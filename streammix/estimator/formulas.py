"""Fitting and predicting through a model formula (``fit(data, formula=...)``).

The design (:class:`~streammix.data.formula.FormulaDesign`) is learned before
pass 0 -- from the whole table in memory, or by the source's levels pass
(:meth:`streammix.ParquetSource.learn_levels`, on the fit's engine) --
and kept as the model's ``formula_``: its design columns are
``feature_names_in_``, its intercept is ``fit_intercept``, and ``predict``,
``score`` and the other methods encode new data with its levels.
"""

from __future__ import annotations

import numpy as np

from streammix.data.arrays import ArraySource
from streammix.data.formula import FormulaDesign, as_table
from streammix.data.frames import frame_column, is_frame
from streammix.data.resolve import is_source
from streammix.engines.resolve import resolve_engine
from streammix.exceptions import DataError

__all__ = ["check_fit_arguments", "formula_source", "prepare", "encode_frame", "frame_source",
           "source_for_model", "design_of", "batch_arrays"]


def check_fit_arguments(formula, concomitant) -> None:
    """Refuse ``fit(X, formula=..., concomitant=Z)`` with z as data: with a formula, the
    gate is a formula too (``concomitant="~ z1 + C(segment)"``)."""
    if formula is not None and concomitant is not None and not isinstance(
            concomitant, (str, FormulaDesign)):
        raise ValueError("with formula=, give the concomitant variables as a formula over "
                         "the same table, concomitant='~ z1 + C(segment)' (or "
                         "ParquetSource(..., formula=..., concomitant=[...]) as X)")


def formula_source(model, X, y, sample_weight, formula):
    """The source of ``fit(X, formula=...)``: a table's design, or a source read through it."""
    if y is not None:
        raise ValueError("with formula=, the target is the formula's left-hand side; do not "
                         "give y")
    design = formula if isinstance(formula, FormulaDesign) else FormulaDesign(formula)
    if design.target is None:
        raise ValueError(f"formula {design.formula!r} has no left-hand side: fit needs "
                         "'target ~ ...'")
    if is_source(X):
        if sample_weight is not None:
            raise ValueError("sample_weight comes from the source itself (weight=)")
        if not hasattr(X, "with_formula"):
            raise TypeError(f"{type(X).__name__} cannot be read through a formula; give a "
                            "table (pandas, polars, pyarrow) or a ParquetSource")
        return X.with_formula(design)
    if not is_frame(X):
        raise TypeError("formula= needs a table (a pandas or polars DataFrame or a pyarrow "
                        f"Table) or a ParquetSource, not {type(X).__name__}")
    if not design.is_learned:
        design = design.learn(X)
    return frame_source(design, X, sample_weight, model.chunk_rows)


def frame_source(design: FormulaDesign, X, sample_weight, chunk_rows: int, need_target=True,
                 y=None):
    """An in-memory source of table ``X`` encoded by the learned ``design`` (the target
    from ``X`` unless ``y`` is given or ``need_target`` is False)."""
    Xd = encode_frame(design, X)
    if y is not None:
        y = np.asarray(y, dtype=np.float64).reshape(-1)
    elif design.target is not None and need_target:
        y = frame_column(X, design.target)
    if isinstance(sample_weight, str):
        sample_weight = frame_column(X, sample_weight)
    source = ArraySource(Xd, y, sample_weight, chunk_rows=chunk_rows,
                         feature_names=design.feature_names)
    source.formula_design = design
    return source


def batch_arrays(design: FormulaDesign, X, y, sample_weight, weight, where: str = "batch"):
    """``(X, y, w, names)`` of a table batch of ``partial_fit`` continuing a formula fit:
    the design columns with the fit's levels, the target from ``y`` or the formula."""
    table = as_table(X)
    design.check_columns(table.column_names, where, need_target=y is None)
    Xd, bad, message = design.encode(table, where)
    if bad is not None:
        raise DataError(message)
    y = frame_column(X, design.target, where) if y is None else y
    w = frame_column(X, weight, where) if weight is not None else sample_weight
    return (Xd, np.asarray(y, dtype=np.float64).reshape(-1),
            None if w is None else np.asarray(w, dtype=np.float64), design.feature_names)


def encode_frame(design: FormulaDesign, X) -> np.ndarray:
    """The design columns (no intercept) of table ``X``; bad values raise DataError."""
    table = as_table(X)
    design.check_columns(table.column_names, "the data", need_target=False)
    Xd, bad, message = design.encode(table, "the data")
    if bad is not None:
        raise DataError(message)
    return Xd


def prepare(model, source) -> None:
    """Before pass 0: learn the levels of a formula source on the model's engine, and take
    ``fit_intercept`` from the formula (``- 1`` / ``+ 0``: False)."""
    designs = [getattr(source, name, None) for name in ("formula_design", "concomitant_design")]
    if not any(designs):
        return
    if not all(d.is_learned for d in designs if d is not None):  # the gate's levels too
        source.learn_levels(resolve_engine(model.engine, source))
    design = getattr(source, "formula_design", None)
    if design is not None:
        model.fit_intercept = design.intercept


def design_of(model) -> FormulaDesign | None:
    """The model's formula design, or None (fitted without a formula)."""
    return getattr(model, "formula_", None)


def source_for_model(model, X, y, sample_weight):
    """Data for ``score``/``predict``/``compute_se`` of a formula model, as a source
    encoded with the model's levels (None when ``X`` is of no kind handled here)."""
    design = model.formula_
    if is_frame(X):
        need = y is None and design.target is not None \
            and design.target in as_table(X).column_names
        return frame_source(design, X, sample_weight, model.chunk_rows, need_target=need, y=y)
    if is_source(X) and hasattr(X, "with_formula"):
        given = getattr(X, "formula_design", None)
        if given is None:
            raise DataError(f"the model was fitted with formula {design.formula!r}: read the "
                            "data through it, ParquetSource(..., formula=model.formula_)")
        if _rhs(given) != _rhs(design):
            raise DataError(f"the source's formula {given.formula!r} is not the model's, "
                            f"{design.formula!r}")
        if given.is_learned and given.levels == design.levels and \
                given.target == (design.target if X.target is not None else None):
            return X
        return X.with_formula(design, keep_target=X.target is not None)
    return None


def _rhs(design: FormulaDesign) -> str:
    return "".join(design.without_target().formula.split())
