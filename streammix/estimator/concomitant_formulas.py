"""Concomitant variables given by a formula: ``fit(df, ..., concomitant="~ z1 + C(segment)")``.

The gate's z are the design columns of a right-hand-side formula
(:class:`~streammix.data.formula.FormulaDesign`) read from the table ``X``:
its levels are learned from the whole table, its columns (``z1``,
``C(segment)[T.b]``, ...) are ``concomitant_names_``, and the learned
design is kept as ``concomitant_formula_`` (saved in the model file with
the gate), so that ``predict_weights``, ``predict``, ``predict_proba`` and
``score_samples`` encode a table given as ``concomitant=`` with the same
levels.  The gate has its own intercept, so the formula keeps its
intercept (treatment coding: the first level is the baseline).

The columns the gate formula reads are not features: the features are the
``formula=``'s design columns, or, without one, the table's other columns
(``target=`` or ``y`` giving the target).
"""

from __future__ import annotations

from streammix.data.arrays import ArraySource
from streammix.data.formula import FormulaDesign, as_table
from streammix.data.frames import is_frame
from streammix.data.resolve import as_source, is_source
from streammix.estimator import formulas

__all__ = ["is_gate_formula", "gate_design", "gate_formula_source", "encode_gate"]


def is_gate_formula(concomitant) -> bool:
    """Whether ``concomitant`` is a formula (a string or a design), not data."""
    return isinstance(concomitant, (str, FormulaDesign))


def gate_design(concomitant) -> FormulaDesign:
    """The (unlearned) design of a gate formula ``"~ z1 + C(segment)"`` (else ValueError)."""
    design = concomitant if isinstance(concomitant, FormulaDesign) else \
        FormulaDesign(concomitant)
    if design.target is not None:
        raise ValueError(f"concomitant formula {design.formula!r} has a left-hand side; a "
                         "gate formula is '~ z1 + C(segment)'")
    if not design.variables:
        raise ValueError(f"concomitant formula {design.formula!r} reads no column")
    return design


def gate_formula_source(model, X, y, sample_weight, concomitant, formula, target):
    """The in-memory source of a fit whose gate is a formula over the table ``X``."""
    if is_source(X):
        raise ValueError("a source carries its own concomitant variables: make it with "
                         "the gate formula, ParquetSource(..., concomitant='~ z1 + ...')")
    if not is_frame(X):
        raise TypeError("a concomitant formula reads its columns from a table X (a pandas "
                        f"or polars DataFrame or a pyarrow Table), not {type(X).__name__}")
    design = gate_design(concomitant)
    if not design.is_learned:
        design = design.learn(X)
    if not design.intercept:
        raise ValueError(f"concomitant formula {design.formula!r} removes the intercept; the "
                         "gate always has one (with treatment coding of the levels)")
    Z = formulas.encode_frame(design, X)
    if formula is not None:
        features = formulas.formula_source(model, X, y, sample_weight, formula)
    else:
        features = as_source(_without(X, design.variables), y, sample_weight,
                             chunk_rows=model.chunk_rows, target=target)
    source = ArraySource(features.X, features.y, features.w, chunk_rows=model.chunk_rows,
                         feature_names=features.feature_names
                         if features.feature_names_given else None,
                         concomitant=Z, concomitant_names=design.feature_names)
    source.formula_design = getattr(features, "formula_design", None)
    source.concomitant_design = design
    return source


def encode_gate(model, Z):
    """``Z`` as the gate's design columns: a table through ``concomitant_formula_`` (the
    fit's levels), anything else as it is."""
    design = getattr(model, "concomitant_formula_", None)
    if design is not None and is_frame(Z):
        return formulas.encode_frame(design, Z)
    return Z


def _without(X, names):
    """Table ``X`` without the columns ``names`` (the gate's)."""
    if type(X).__module__.split(".")[0] == "pandas":
        return X.drop(columns=[n for n in names if n in X.columns])
    table = as_table(X)
    return table.drop_columns([n for n in names if n in table.column_names])

