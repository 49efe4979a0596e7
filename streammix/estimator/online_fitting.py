"""Online EM on the estimator: ``partial_fit``, and ``polish`` to finish with batch passes.

A mixin of :class:`streammix.MixtureOfLinearRegressions`; the state machine
itself is :class:`streammix.online.OnlineEM`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from streammix.algorithms.em import EMSettings, run_em
from streammix.algorithms.online import OnlineEM, OnlineSettings
from streammix.algorithms.start.candidates import Profile, variance_floor
from streammix.algorithms.tasks import resolve_engine
from streammix.core.checks import DataError, NotFittedError
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, design_matrix
from streammix.data.streams import check_batch_values, unchecked_batch_arrays

if TYPE_CHECKING:
    from streammix.estimator.model import MixtureOfLinearRegressions

__all__ = ["OnlineFitMixin"]


class OnlineFitMixin:
    """``partial_fit``, the lazily derived fitted attributes of an online fit, ``polish``."""

    def partial_fit(self, X, y=None, sample_weight=None, *, target: str | None = None,
                    features=None, weight: str | None = None, batch_id=None,
                    ) -> MixtureOfLinearRegressions:
        """Update the fit with one batch of a stream by online EM (MATH.md §2).

        The first call initialises from its batch (starting values as in
        :meth:`fit`, on that batch; it must hold more rows than free
        parameters) -- or, after :meth:`fit`, continues from the fitted
        parameters; every call then makes one stepwise-EM update.  The state
        machine is :class:`streammix.online.OnlineEM`, kept in ``online_``.
        Step, forgetting and averaging come from ``step_alpha``,
        ``step_offset``, ``forget`` and ``average``.

        Parameters
        ----------
        X : array-like (n, d), pandas DataFrame, pyarrow RecordBatch or Table
            Features; or, when ``y`` is None, a table that also holds the
            ``target`` column (and the ``weight`` column, if any).
        y, sample_weight : array-like of shape (n,), optional
        target, features, weight : str, list of str, str, optional
            Column names for a table batch; ``features`` defaults to every
            column but the target and weight.
        batch_id : str or (str, int), optional
            Identity of the batch: a name, or ``(stream key, first row)``.
            A batch whose rows were already consumed is ignored, so replaying
            batches after a restart does not count them twice.

        Returns
        -------
        self

        Notes
        -----
        After each call the fitted attributes describe the online estimate
        (the Polyak–Ruppert mean when averaging has started).  ``loglik_``
        and ``history_`` are *prequential*: each batch's log-likelihood at
        the parameters before its update (the first batch's is in-sample);
        ``n_iter_`` counts M-steps; ``converged_`` is False.  Call
        :meth:`polish` on a finite data set to finish with batch EM passes.
        The fitted attributes are derived from ``online_`` when first read
        after a call, so a stream of many small batches pays for them only
        when someone looks.  The batch is scanned for NaN, inf and negative
        weights only when its E-step statistics are not finite or it has
        weights <= 0; errors and their messages are those of :meth:`fit`,
        and a bad batch changes nothing.
        """
        if isinstance(batch_id, str):
            key, first_row = batch_id, 0
        elif batch_id is None:
            key, first_row = None, 0
        else:
            key, first_row = str(batch_id[0]), int(batch_id[1])
        where = "batch" if batch_id is None else f"batch {batch_id!r}"
        state = getattr(self, "online_", None)
        if state is not None and features is None and y is None:
            features = self.feature_names_in_
        Xa, ya, wa, names = unchecked_batch_arrays(X, y, sample_weight, target=target,
                                                   features=features, weight=weight, where=where)

        def check() -> None:
            check_batch_values(Xa, ya, wa, names, target=target, where=where)

        # The full scan for NaN / inf (and its precise message) runs only when needed:
        # the E-step statistics of a batch with a bad value on a row of positive
        # weight are not finite, and update() then calls check() before anything is
        # committed.  Rows of zero weight could hide a bad value, and negative weights
        # would not show: any weight <= 0 (or NaN) means the scan runs first.
        if state is None or (wa is not None and wa.size and not wa.min() > 0):
            check()
        if state is None:
            self._check_hyperparameters()
            settings = OnlineSettings(self.step_alpha, self.step_offset, self.forget,
                                      self.average)
            rng = np.random.default_rng(self.random_state)
            if hasattr(self, "params_") and self.n_features_in_ == Xa.shape[1]:
                floor = variance_floor(design_matrix(Xa, self.fit_intercept), ya,
                                       self.variance_floor)
                state = OnlineEM.from_params(self.params_, self._mstep_options(floor),
                                             settings, self.fit_intercept, rng)
            else:
                state = OnlineEM.start(
                    Xa, ya, wa, self.n_components, fit_intercept=self.fit_intercept,
                    options=self._mstep_options(0.0), settings=settings,
                    init=self._start_params(Xa.shape[1]),
                    variance_floor_factor=self.variance_floor,
                    sample_size=self.init_sample_size, rng=rng, where=where)
                self.feature_names_in_ = list(names)
            self.online_ = state
            self.n_features_in_ = Xa.shape[1]
        elif Xa.shape[1] != self.n_features_in_:
            check()  # bad values are reported first, as batch fitting does
            raise DataError(f"{where}: has {Xa.shape[1]} features; the stream started with "
                            f"{self.n_features_in_}")
        if state.update(Xa, ya, wa, key=key, first_row=first_row, check=check) is not None:
            self._online_updated()
        return self

    #: The fitted attributes that describe the online estimate; after a
    #: ``partial_fit`` they are derived from ``online_`` when first read.
    _ONLINE_FITTED = frozenset((
        "params_", "n_rows_", "sum_weights_", "loglik_", "objective_", "class_loglik_",
        "entropy_", "variance_floor_", "n_iter_", "converged_", "history_", "n_components_",
        "weights_", "intercept_", "coef_", "sigma_"))

    def _online_updated(self) -> None:
        """Mark the fitted attributes as out of date after an online update.

        Deriving them (sorting the components, copying arrays and the
        history) costs as much as the rest of a small batch's update, and a
        stream may go on for many batches before anyone looks: they are
        removed here and rebuilt by :meth:`__getattr__` when first read.
        """
        d = self.__dict__
        if not d.get("_online_stale"):
            for name in (*self._ONLINE_FITTED, *self._INFERENCE, "n_passes_"):
                d.pop(name, None)  # the inference and n_passes_ described another fit
            d["_online_stale"] = True

    def __getattr__(self, name: str):
        # Called only when normal lookup fails: an online fitted attribute not yet derived.
        d = self.__dict__
        if name in self._ONLINE_FITTED and d.get("_online_stale"):
            self._set_online_fitted()
            return d[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _set_online_fitted(self) -> None:
        d = self.__dict__
        for name in (*self._INFERENCE, "n_passes_"):
            d.pop(name, None)  # they described another fit
        d["_online_stale"] = False
        state = self.online_
        params = state.estimate()
        order = np.lexsort((params.beta[:, 0], -params.weights))
        self.params_ = params.permute(order)
        self.n_rows_ = int(state.n_rows)
        self.sum_weights_ = float(state.sum_w)
        self.loglik_ = self.objective_ = state.prequential_loglik
        self.class_loglik_ = float(state.totals["class_loglik"])
        self.entropy_ = float(state.totals["entropy"])
        self.variance_floor_ = float(state.options.variance_floor)
        self.n_iter_ = int(state.n_msteps)
        self.converged_ = False
        self.history_ = list(state.history)
        self._set_public_arrays()

    def polish(self, X, y=None, sample_weight=None, *, n_passes: int = 2,
               ) -> MixtureOfLinearRegressions:
        """Refine an online fit with up to ``n_passes`` batch EM passes over finite data.

        Online EM is not monotone and its estimate is noisy at the scale of
        its last steps; a few batch passes from it (Cappé 2011) reach the
        batch MLE basin and give ``loglik_``, BIC and the other criteria at
        one parameter set, as :meth:`fit` does.  Stops early when the
        log-likelihood changes by less than ``tol``.  The online state
        (``online_``) is kept; a later :meth:`partial_fit` continues the
        online recursion.

        Parameters
        ----------
        X, y, sample_weight : as in :meth:`fit` (arrays or a source)
        n_passes : int, default=2
            Maximum number of M-steps (each one E-step pass; one more pass
            evaluates the final parameters).
        """
        state = getattr(self, "online_", None)
        if state is None:
            raise NotFittedError("polish refines an online fit; call partial_fit first")
        if int(n_passes) < 1:
            raise ValueError(f"n_passes must be >= 1, got {n_passes!r}")
        source = self._source_like_fit(X, y, sample_weight)
        engine = resolve_engine(self.engine)

        def pass_fn(params: MixtureParams) -> SuffStats:
            return self._estep_pass(engine, source, params)

        settings = EMSettings(mstep=state.options, tol=self.tol, max_iter=int(n_passes),
                              min_weight=self.min_weight, on_collapse=self.on_collapse)
        result = run_em(pass_fn, state.estimate(), settings, warn=False)
        totals = Profile(result.stats.n_rows, 0, result.stats.sum_w, 0, None, None, None)
        names = self.feature_names_in_
        self._set_fitted(result, source, totals)
        self.feature_names_in_ = names
        self.n_passes_ = len(result.history)  # the passes polish made
        return self
