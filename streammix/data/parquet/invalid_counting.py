"""Counting a lake's invalid rows: :meth:`ParquetSource.count_invalid
<streammix.ParquetSource.count_invalid>` and the view its pass reads through."""

from __future__ import annotations

from streammix.data.parquet.pieces import InvalidRows, ParquetPiece

__all__ = ["InvalidCountingMixin", "InvalidRowsView"]


class InvalidCountingMixin:
    """The counting side of :class:`~streammix.ParquetSource`: rows a fit would drop."""

    def count_invalid(self, engine=None) -> InvalidRows:
        """Count rows with null, NaN or infinite values, per file and column.

        One pass that reads the same columns as a fit; with
        ``on_invalid="drop"`` its ``n_rows`` is the number of rows a fit
        drops.  ``engine`` is any streammix engine (default in-process).
        With a formula, every column it reads counts (a null level of a
        categorical, a NaN in a number used only inside a term), and so does
        a design column that is NaN or infinite on a kept row (``np.log(x)``
        of x <= 0, counted under the design column's name); the levels are
        learned first (:meth:`~streammix.ParquetSource.learn_levels`, one more
        pass) if they are not.
        """
        from streammix.engines.inprocess import InProcessEngine
        engine = InProcessEngine() if engine is None else engine
        if self._designs():
            self.learn_levels(engine)
        return engine.map_reduce(InvalidRowsView(self), _identity, InvalidRows())


class InvalidRowsView:
    """The source seen through :meth:`~streammix.ParquetSource.count_invalid`: reads counts."""

    def __init__(self, source):
        self.source = source

    def plan(self):
        return self.source.plan()

    def read(self, piece: ParquetPiece) -> InvalidRows:
        _, _, bad, by_column, table = self.source._read_values(piece, on_invalid="drop",
                                                                with_table=True)
        if self.source._designs():  # the columns the formulas read, too
            bad, by_column = self.source._formula_invalid(piece, table, bad, by_column)
        n_bad = 0 if bad is None else int(bad.sum())
        by_file = {self.source.shown(piece.path): n_bad} if n_bad else {}
        return InvalidRows(n_bad, by_column, by_file)

    def __repr__(self) -> str:
        return f"InvalidRowsView({self.source!r})"


def _identity(value):
    return value
