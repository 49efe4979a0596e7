"""Inference and reports on the estimator: standard errors, summaries, alignment.

A mixin of :class:`streammix.MixtureOfLinearRegressions`; the mathematics is
in :mod:`streammix.inference`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from streammix.algorithms.information import (
    SE_METHODS,
    InformationTask,
    InfoStats,
    ParameterLayout,
    infer,
)
from streammix.algorithms.tasks import resolve_engine

if TYPE_CHECKING:
    from streammix.estimator.model import MixtureOfLinearRegressions

__all__ = ["InferenceMixin"]


class InferenceMixin:
    """``compute_se`` and the inference attributes; ``summary``, ``aligned_to``, ``report``."""

    _INFERENCE = ("vcov_", "vcov_names_", "bse_", "se_method_", "score_gap_")

    def compute_se(self, X, y=None, sample_weight=None, method: str = "louis",
                   ) -> MixtureOfLinearRegressions:
        """Standard errors of the fitted parameters, from one pass over the data.

        Parameters
        ----------
        X, y, sample_weight
            The data the model was fitted on (arrays or a source), as in :meth:`fit`.
        method : {"louis", "opg", "sandwich"}, default="louis"
            ``"louis"``: inverse observed information by Louis' formula (exact
            at any θ); ``"opg"``: inverse outer product of the per-row scores
            (valid at the MLE); ``"sandwich"``: I⁻¹ J I⁻¹, robust to a
            misspecified noise model.

        Returns
        -------
        self
            With ``vcov_`` (P, P), the covariance of the working parameters
            named in ``vcov_names_``: per component the coefficients
            (intercept first) and log σ_j (one log σ for ``noise="shared"``,
            none for ``"fixed"``), then the multinomial logits
            log(π_j/π_1), j = 2..m (flexmix's ``refit()`` parametrisation,
            with components in the model's order); ``bse_``, a dict of
            standard errors: ``coef`` (m, p) (intercept first when fitted),
            ``log_sigma`` (m,), ``sigma`` (m,) (delta method),
            ``logit_weight`` (m,) (NaN for the baseline component 1) and
            ``weight`` (m,) (delta method); ``se_method_``; ``score_gap_``,
            the estimated log-likelihood distance to the maximum (≈ 0 at the
            MLE; an :class:`~streammix.inference.InferenceWarning` is raised
            above 0.01).

        Notes
        -----
        The matrices are those of the likelihood; under priors they are
        evaluated at the MAP estimate without the prior's curvature.  A σ
        held at the variance floor, or ``df_correction=True``, is not a
        likelihood maximum, which the score check reports.
        """
        self._check_fitted()
        if method not in SE_METHODS:
            raise ValueError(f"method must be one of {SE_METHODS}, got {method!r}")
        source = self._source_like_fit(X, y, sample_weight)
        engine = resolve_engine(self.engine)
        self._compute_se(source, engine, method)
        return self

    def _compute_se(self, source, engine, method: str) -> None:
        params = self.params_
        layout = ParameterLayout(params.n_components, params.n_coef, self.noise)
        stats = engine.map_reduce(source, InformationTask(params, self.fit_intercept, self.noise),
                                  InfoStats.zeros(layout.size))
        result = infer(stats, layout, method)
        self._set_inference(result.vcov, method, result.loglik_gap)

    def _set_inference(self, vcov: np.ndarray, method: str, gap: float) -> None:
        """Set the inference attributes from a working covariance (load, permute)."""
        from streammix.algorithms.information import standard_errors
        params = self.params_
        layout = ParameterLayout(params.n_components, params.n_coef, self.noise)
        if vcov.shape != (layout.size, layout.size):
            raise ValueError(f"vcov has shape {vcov.shape}; the model has {layout.size} "
                             "free parameters")
        self.vcov_ = vcov
        self.vcov_names_ = layout.names(self._coef_names())
        self.se_method_ = method
        self.score_gap_ = float(gap)
        self.bse_ = standard_errors(vcov, layout, params)

    def _coef_names(self) -> list[str]:
        names = list(self.feature_names_in_) or [f"x{k}" for k in range(self.n_features_in_)]
        return (["(intercept)"] if self.fit_intercept else []) + names

    def summary(self, alpha: float = 0.05):
        """A :class:`~streammix.summary.Summary` of the fit: per component
        coefficient, SE, z, p-value and confidence interval; weight; σ; the
        fit statistics.  Standard errors appear once :meth:`compute_se` (or
        ``fit(..., se=True)``) has run."""
        from streammix.reports.summary import Summary
        self._check_fitted()
        return Summary.from_model(self, alpha=alpha)

    def aligned_to(self, reference) -> MixtureOfLinearRegressions:
        """A copy with components permuted to match ``reference`` (a model or
        :class:`MixtureParams`) by Hungarian matching on the coefficients
        (:func:`streammix.align.align`).  The copy's order is then not the
        canonical decreasing-weight order; ``vcov_`` and ``bse_`` follow the
        permutation (the logits change baseline to the new component 1)."""
        from streammix.estimator.align import align, permute_model
        self._check_fitted()
        return permute_model(self, align(reference, self))

    def report(self) -> str:
        """A readable text table of the fitted model."""
        from streammix.reports.text import format_model
        return format_model(self)
