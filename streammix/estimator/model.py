"""The scikit-learn style estimator users touch.

One class; its pipeline is the named functions of :mod:`streammix.estimator.fitting`
(batch fits), :mod:`streammix.estimator.online_fitting` (streams),
:mod:`streammix.estimator.inference` (standard errors) and
:mod:`streammix.estimator.persistence` (model files), which model selection uses too.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator

from streammix.algorithms.information import SE_METHODS
from streammix.core.checks import check_fitted
from streammix.data.arrays import DEFAULT_CHUNK_ROWS
from streammix.engines.resolve import resolve_engine
from streammix.estimator import base, fitting, formulas, online_fitting, persistence, prediction
from streammix.estimator import concomitant_fitting as gate
from streammix.estimator import grouped_fitting as grouped
from streammix.estimator import sklearn_hooks as hooks
from streammix.estimator.distribution import DistributionMixin
from streammix.estimator.inference import compute_se

__all__ = ["MixtureOfLinearRegressions"]


class MixtureOfLinearRegressions(gate.ConcomitantMethods, DistributionMixin, BaseEstimator):
    """Finite mixture of linear regressions fitted by EM, in chunks.

    ``p(y | x) = Σ_j π_j N(y | a_jᵀx + b_j, σ_j²)``.  Each EM iteration is
    one pass over the data (a map over chunks and a tree sum of sufficient
    statistics), so the data need not fit in memory.

    Parameters
    ----------
    n_components : int, default=2
        Number of components m.
    noise : {"per_component", "shared", "fixed"}, default="per_component"
        One σ per component (as flexmix), one σ for all, or a known σ given by ``sigma``.
    sigma : float or array-like of shape (n_components,), optional
        The known noise standard deviation(s) when ``noise="fixed"``.
    fit_intercept : bool, default=True
        Each component has an intercept b_j (a column of ones); False: through the origin.
    tol : float, default=1e-4
        Plain EM stops when the log-likelihood (log-posterior under priors)
        changes by less than ``tol`` in absolute value between two passes;
        SQUAREM when the gain still to come is estimated below ``tol``.  Absolute,
        not relative, so its meaning does not change with n (the mathematics
        page (docs/mathematics.rst), §3.2).
    max_iter : int, default=500
        Maximum number of EM iterations (M-steps) per run; under SQUAREM,
        of passes after the first.
    n_init : int, default=1
        Number of runs from different starting values; the run with the
        highest log-likelihood is kept.
    init : {"auto", "random", "ybins", "resid_bins", "spectral"}, MixtureParams or dict
        Starting values: ``"auto"`` refines several candidates on the sample
        and keeps the best (on small samples, a pool of hundreds of short
        runs, :mod:`streammix.algorithms.start.pool`); ``"random"``
        (flexmix), ``"ybins"`` (mixtools), ``"resid_bins"`` and
        ``"spectral"`` are single candidates (the user guide describes
        them); a dict with keys ``weights``, ``coef``,
        ``intercept``, ``sigma`` (original scale) starts from those values.
    random_state : int or None
        Seed of all random choices (the sample and the starting values).
    variance_floor : float, default=1e-4
        Every σ_j² is kept at or above this multiple of the pooled OLS
        residual variance, so the likelihood stays bounded (σ_j at least 1%
        of the pooled residual σ; low enough not to bind at real optima,
        see the mathematics page (docs/mathematics.rst), §1.5).
    min_weight, min_eff_rows, min_sigma_ratio : float, default=0, p + 1, 0.1
        A component is degenerate (the mathematics page, §1.9) with weight <
        ``min_weight`` (flexmix's ``minprior``, 0.05 there), fewer effective
        rows than ``min_eff_rows`` (None: p + 1) or a rank-deficient design, or
        as a spike: < 3 (p + 1) rows and σ < ``min_sigma_ratio`` × pooled OLS σ.
    y_resolution : "auto", float or None, default="auto"
        δ, the step y is recorded to ("auto": found on the sample, 0 if continuous; None: off);
        choosing among runs, a per-component σ < δ/√12 is spurious (mathematics page, §1.9).
    on_collapse, max_reseeds : {"reseed", "drop", "error"}, int, default="reseed", 3
        A degenerate component is re-seeded on the worst-explained sample rows
        (``max_reseeds`` times per run, then dropped), dropped, or an error;
        each with a :class:`~streammix.ComponentCollapseWarning` and ``history_``.
    ridge : float, default=0.0
        Precision of a normal prior N(0, σ_j²/ridge) on the coefficients
        (not the intercept): MAP estimation.
    prior_dof, prior_scale : float, default=0.0
        ν0 and ζ0² of an inverse-gamma IG(ν0/2, ζ0²/2) prior on each σ².
    dirichlet_alpha : float, default=1.0
        Dirichlet prior on the weights (1 means none).
    df_correction : bool, default=False
        Estimate σ_j² as RSS_j / (S0_j (1 - p/n)) like flexmix's FLXMRglm
        instead of the maximum-likelihood RSS_j / S0_j.
    chunk_rows : int, default=65536
        Rows per chunk when fitting in-memory arrays.
    init_sample_size : int, default=100000
        Size of the weighted reservoir sample used for starting values.
    engine : engine or distributed.Client, optional
        Where passes run: in-process by default; a :class:`~streammix.DaskEngine`
        or a ``distributed.Client`` runs them on a Dask cluster.
    step_alpha, step_offset : float, default=0.6, 2.0
        Online EM (:meth:`partial_fit`): step η_k = (k + step_offset)^(−step_alpha)
        (stepwise EM, Liang & Klein 2009; see :mod:`streammix.algorithms.online`).
    forget : float, optional
        Online EM: a constant step with a window of about ``forget`` rows,
        for drifting streams (default: average the whole stream).
    average : bool or int, default=False
        Online EM: report the Polyak–Ruppert average of the parameters (from
        the 10th M-step, or from the given M-step number).
    accelerate : {"squarem", None}, default="squarem"
        ``"squarem"`` extrapolates EM steps (SQUAREM, the mathematics page
        (docs/mathematics.rst), §3.1) to need fewer passes; ``history_`` then
        also holds the extrapolated points.  None runs plain EM, monotone.
    cull_restarts : bool, default=True
        With ``n_init > 1`` all runs read the same passes; hopeless runs and runs
        that follow the best one to the same optimum are stopped
        (:class:`streammix.algorithms.restarts.CullRule`).
    standardize : bool, default=False
        Run EM on data standardised with the pass-0 moments and map the fit
        back (:mod:`streammix.algorithms.standardize`): the same optimum,
        better conditioned; priors then apply on the standardised scale.
    fixed : str, int or list of them, optional
        Coefficients shared by all components (:mod:`streammix.estimator.constraints`).

    Attributes
    ----------
    weights_ : ndarray of shape (m,)
    coef_ : ndarray of shape (m, n_features)
    intercept_ : ndarray of shape (m,)
    sigma_ : ndarray of shape (m,)
    loglik_ : float
        Total (weighted) log-likelihood at the fitted parameters.
    objective_ : float
        ``loglik_`` plus the log-prior (equal to ``loglik_`` without priors).
    n_iter_ : int
        EM iterations (M-steps) of the kept run; after :meth:`partial_fit`,
        the M-steps of online EM.
    converged_ : bool
        Whether the kept run met the stopping rule before ``max_iter`` (a
        :class:`~streammix.ConvergenceWarning` is raised otherwise); always
        False after :meth:`partial_fit`.
    history_ : list of dict
        One record per pass of the kept run: iteration, loglik, objective,
        number of components and any event (a dropped or re-seeded component,
        with ``"collapse"``: each component's reason and numbers).
    passed_over_ : dict or None
        A higher degenerate optimum passed over (``loglik``, ``run``,
        ``iteration``, ``reasons``; :class:`~streammix.SpuriousOptimumWarning`).
    n_components_ : int
        Components left at the end (fewer than asked if some were dropped).
    params_ : MixtureParams
        The parameters in design space (intercept first).
    variance_floor_ : float
        The absolute lower bound that was applied to every σ².
    vcov_, vcov_names_, bse_, se_method_, score_gap_
        Set by :meth:`compute_se` or ``fit(..., se=True)`` only: covariance
        of the working parameters (coefficients, log σ, log(π_j/π_1)), their
        names, per-component standard errors, the method and the estimated
        log-likelihood gap to the maximum (see :meth:`compute_se`).
    n_passes_ : int
        Scans of the data made by ``fit``, pass 0 included (all restarts
        read the same scans).

    Notes
    -----
    Components are reported in a canonical order: decreasing weight.
    ``sample_weight`` holds frequency weights; N = Σw is the sample size in BIC.
    """

    def __init__(self, n_components: int = 2, *, noise: str = "per_component", sigma=None,
                 fit_intercept: bool = True, tol: float = 1e-4, max_iter: int = 500,
                 n_init: int = 1, init="auto", random_state=None, variance_floor: float = 1e-4,
                 min_weight: float = 0.0, min_eff_rows: float | None = None,
                 min_sigma_ratio: float = 0.1, y_resolution="auto", on_collapse: str = "reseed",
                 max_reseeds: int = 3, ridge: float = 0.0,
                 prior_dof: float = 0.0, prior_scale: float = 0.0, dirichlet_alpha: float = 1.0,
                 df_correction: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 init_sample_size: int = 100_000, engine=None, step_alpha: float = 0.6,
                 step_offset: float = 2.0, forget: float | None = None, average=False,
                 accelerate="squarem", cull_restarts: bool = True,
                 standardize: bool = False, fixed=None):
        self.n_components = n_components
        self.noise = noise
        self.sigma = sigma
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init = init
        self.random_state = random_state
        self.variance_floor = variance_floor
        self.min_weight = min_weight
        self.min_eff_rows = min_eff_rows
        self.min_sigma_ratio = min_sigma_ratio
        self.y_resolution = y_resolution
        self.on_collapse = on_collapse
        self.max_reseeds = max_reseeds
        self.ridge = ridge
        self.prior_dof = prior_dof
        self.prior_scale = prior_scale
        self.dirichlet_alpha = dirichlet_alpha
        self.df_correction = df_correction
        self.chunk_rows = chunk_rows
        self.init_sample_size = init_sample_size
        self.engine = engine
        self.step_alpha = step_alpha
        self.step_offset = step_offset
        self.forget = forget
        self.average = average
        self.accelerate = accelerate
        self.cull_restarts = cull_restarts
        self.standardize = standardize
        self.fixed = fixed

    def __sklearn_tags__(self):
        """Scikit-learn's tags (get_params, set_params, the repr: from BaseEstimator)."""
        return hooks.sklearn_tags(super().__sklearn_tags__())

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "params_")

    def n_parameters(self, n_components: int | None = None, n_features: int | None = None) -> int:
        """Number of free parameters P (the mathematics page (docs/mathematics.rst), §7)."""
        m = self.n_components_ if n_components is None else n_components
        p = (self.n_features_in_ if n_features is None else n_features) + int(self.fit_intercept)
        return base.n_parameters(self.noise, m, p) + gate.extra_parameters(self, m)

    def fit(self, X, y=None, sample_weight=None, *, target: str | None = None,
            se: bool | str = False, callback=None, checkpoint=None, resume: bool = False,
            concomitant=None, groups=None, formula=None) -> MixtureOfLinearRegressions:
        """Fit the mixture by EM.

        Parameters
        ----------
        X : array-like (n, d), DataFrame, pyarrow Table, Dask collection, or a source
            Features, or a source (e.g. :class:`streammix.ParquetSource`) that also supplies
            target and weights.  Table columns are kept by name (``feature_names_in_``).
        y : array-like of shape (n,), optional
            Target, unless ``X`` is a source or ``target`` is given.
        sample_weight : array-like of shape (n,), or str, optional
            Non-negative frequency weights (with ``target``, may name a column).
        target : str, optional
            The target column of a table ``X``; the features are the others.
        se : bool or {"louis", "opg", "sandwich"}, default=False
            Also compute standard errors (one more pass, :meth:`compute_se`; True: louis).
        callback : callable, optional
            ``callback(record)`` after each EM pass, with the pass's history record
            (iteration, loglik, objective, n_components; iterations restart per run).
        checkpoint : str or path, optional
            A folder where the fit is saved as it goes, every pass atomically
            (:mod:`streammix.estimator.checkpoint`); a folder that already
            holds a checkpoint is refused unless ``resume=True``.
        resume : bool, default=False
            Continue the fit saved in ``checkpoint`` (saved passes are replayed without reading
            the data): the result equals an uninterrupted fit, bit for bit.  A checkpoint of
            other data or settings raises :class:`streammix.CheckpointError`.
        concomitant : array-like of shape (n, q), or a formula ``"~ z1 + C(segment)"``
            Concomitant variables z: weights π_j(z) = softmax(γ_jᵀ[1, z]) in ``concomitant_coef_``
            (m, q + 1) (:mod:`~.concomitant_fitting`; formulas: :mod:`~.concomitant_formulas`).
        groups : array-like of shape (n,), optional
            Group ids: a group's rows share one component (:mod:`~.grouped_fitting`).
        formula : str, optional
            ``"y ~ x1 + C(region) + np.log(x4)"`` for a table or ParquetSource ``X``: the
            features are its design columns, kept with their levels in ``formula_``
            (:mod:`streammix.estimator.formulas`); ``- 1`` sets ``fit_intercept=False``.

        Returns
        -------
        self
        """
        formulas.check_fit_arguments(formula, concomitant)
        if groups is not None or grouped.is_grouped_source(X):
            return grouped.fit_grouped(self, X, y, sample_weight, groups, se=se, callback=callback,
                                       checkpoint=checkpoint, resume=resume, gate=concomitant)
        if target is None and concomitant is None and formula is None:
            X, y = hooks.check_fit_arrays(self, X, y)
        if gate.fit_if_concomitant(self, X, y, sample_weight, concomitant, target=target, se=se,
                                   callback=callback, checkpoint=checkpoint, resume=resume,
                                   formula=formula):
            return self
        fitting.fit(self, X, y, sample_weight, target=target, se=se, callback=callback,
                    checkpoint=checkpoint, resume=resume, formula=formula)
        return self

    def partial_fit(self, X, y=None, sample_weight=None, *, target: str | None = None,
                    features=None, weight: str | None = None, batch_id=None,
                    concomitant=None) -> MixtureOfLinearRegressions:
        """Update the fit with one batch of a stream by online EM.

        The first call initialises from its batch (starting values as in
        :meth:`fit`, on that batch; it must hold more rows than free
        parameters) -- or, after :meth:`fit`, continues from the fitted
        parameters; every call then makes one stepwise-EM update.  The state
        machine is :class:`streammix.algorithms.online.OnlineEM`, kept in ``online_``.
        Step, forgetting, averaging: ``step_alpha``, ``step_offset``, ``forget``, ``average``.

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
            Identity of the batch: a name, or ``(stream key, first row)``.  A batch whose
            rows were already consumed is ignored (a replay after a restart).
        concomitant : array-like or DataFrame (n, q), optional
            Concomitant variables: weights π(z) (:mod:`~streammix.algorithms.online_gate`).

        Returns
        -------
        self

        Notes
        -----
        After each call the fitted attributes describe the online estimate
        (the Polyak–Ruppert mean when averaging has started).  ``loglik_``
        and ``history_`` are *prequential*: each batch's log-likelihood at
        the parameters before its update (the first batch's is in-sample);
        ``n_iter_`` counts M-steps; ``converged_`` is False.  Bad values raise
        the errors of :meth:`fit`, and a bad batch changes nothing."""
        hooks.check_batch_features(self, X)
        online_fitting.partial_fit(self, X, y, sample_weight, target=target, features=features,
                                   weight=weight, batch_id=batch_id, concomitant=concomitant)
        return self

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
        online_fitting.polish(self, X, y, sample_weight, n_passes=n_passes)
        return self

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
            named in ``vcov_names_`` (per component the coefficients and
            log σ_j, then the logits log(π_j/π_1), j = 2..m: flexmix's
            ``refit()`` parametrisation); ``bse_``, a dict of standard errors
            (``coef``, ``log_sigma``, ``sigma``, ``logit_weight``,
            ``weight``); ``se_method_``; ``score_gap_``, the estimated
            log-likelihood distance to the maximum (≈ 0 at the MLE; an
            :class:`~streammix.InferenceWarning` is raised above 0.01).
        The matrices are those of the likelihood (under priors, at the MAP without the
        prior's curvature); a σ at the variance floor or ``df_correction=True`` is not a
        likelihood maximum, which the score check reports.
        """
        check_fitted(self)
        if method not in SE_METHODS:
            raise ValueError(f"method must be one of {SE_METHODS}, got {method!r}")
        source = base.source_like_fit(self, X, y, sample_weight)
        compute_se(self, source, resolve_engine(self.engine, source), method)
        return self

    def summary(self, alpha: float = 0.05):
        """A :class:`~streammix.reports.summary.Summary` of the fit: per component
        coefficient, SE, z, p-value and confidence interval; weight; σ; the
        fit statistics.  Standard errors appear once :meth:`compute_se` (or
        ``fit(..., se=True)``) has run."""
        from streammix.reports.summary import Summary
        check_fitted(self)
        return Summary.from_model(self, alpha=alpha)

    def aligned_to(self, reference) -> MixtureOfLinearRegressions:
        """A copy with components permuted to match ``reference`` (a model or
        :class:`MixtureParams`) by Hungarian matching on the coefficients
        (:func:`streammix.estimator.align.align`).  The copy's order is then not the
        canonical decreasing-weight order; ``vcov_`` and ``bse_`` follow the
        permutation (the logits change baseline to the new component 1)."""
        from streammix.estimator.align import align, permute_model
        check_fitted(self)
        return permute_model(self, align(reference, self))

    def report(self) -> str:
        """A readable text table of the fitted model."""
        from streammix.reports.text import format_model
        return format_model(self)

    def to_dict(self) -> dict:
        """A JSON-ready record of the hyper-parameters and the fitted state."""
        return persistence.to_dict(self)

    @classmethod
    def from_dict(cls, record: dict) -> MixtureOfLinearRegressions:
        """The estimator a :meth:`to_dict` record describes."""
        return persistence.from_dict(cls, record)

    def save(self, path, *, data: dict | None = None) -> None:
        """Write the model to a JSON file atomically (floats round-trip exactly).

        ``data`` optionally records the data columns the model was fitted on
        (``streammix fit`` stores path, target, features and weight there).
        """
        persistence.save(self, path, data)

    @classmethod
    def load(cls, path) -> MixtureOfLinearRegressions:
        """Read a model written by :meth:`save`."""
        return persistence.read_model_file(path, cls)[0]

    def predict(self, X, *, concomitant=None) -> np.ndarray:
        """Mixture mean E[y | x] = Σ_j π_j (a_jᵀx + b_j) (π_j(z)); X may be a source."""
        check_fitted(self)
        if hasattr(X, "plan") and hasattr(X, "read"):
            return prediction.predict_source(self, base.source_like_fit(self, X, None, None))
        Xd = base.design(self, hooks.check_predict_array(self, X))  # warnings: the caller's
        mean = gate.mixture_mean(self, Xd, concomitant)
        return prediction.check_finite_mean(mean, self.params_, "X")

    def predict_components(self, X) -> np.ndarray:
        """Mean of each component, shape (n, m)."""
        return base.design(self, hooks.check_predict_array(self, X)) @ self.params_.beta.T

    def predict_proba(self, X, y=None, *, concomitant=None, groups=None) -> np.ndarray:
        """Component probabilities (n, m): P(j | x, y) given ``y``, else π_j (or π_j(z))."""
        X = hooks.check_predict_array(self, X)
        if groups is not None and y is not None:  # one posterior per group
            return grouped.group_posteriors(self, X, y, groups, concomitant)
        if y is None:
            if concomitant is not None:
                return self.predict_weights(concomitant)
            return np.tile(self.params_.weights, (base.design(self, X).shape[0], 1))
        return np.exp(gate.row_loglik(self, X, y, concomitant)[1])

    def score_samples(self, X, y, *, concomitant=None) -> np.ndarray:
        """Log-likelihood log p(y_i | x_i) of each row."""
        X = hooks.check_predict_array(self, X)
        return gate.row_loglik(self, X, y, concomitant)[0]

    def score(self, X, y=None, sample_weight=None) -> float:
        """Mean log-likelihood per unit weight, Σ w log p / Σ w."""
        X, y = hooks.check_score_arrays(self, X, y)
        stats = base.pass_stats(self, X, y, sample_weight)
        return stats.loglik / stats.sum_w

    def bic(self, X, y=None, sample_weight=None) -> float:
        """Bayesian information criterion −2ℓ + P log N (lower is better)."""
        X, y = hooks.check_score_arrays(self, X, y)
        stats = base.pass_stats(self, X, y, sample_weight)
        return -2.0 * stats.loglik + self.n_parameters() * math.log(stats.sum_w)

    def aic(self, X, y=None, sample_weight=None) -> float:
        """Akaike information criterion −2ℓ + 2P (lower is better)."""
        X, y = hooks.check_score_arrays(self, X, y)
        stats = base.pass_stats(self, X, y, sample_weight)
        return -2.0 * stats.loglik + 2.0 * self.n_parameters()

    def information_criteria(self) -> dict:
        """AIC, BIC, ICL and ICL-BIC of the fit, from its final pass (the mathematics
        page (docs/mathematics.rst), §7)."""
        check_fitted(self)
        P = self.n_parameters()
        log_n = math.log(self.sum_weights_)
        bic = -2.0 * self.loglik_ + P * log_n
        return {
            "loglik": self.loglik_, "n_parameters": P, "n": self.sum_weights_,
            "aic": -2.0 * self.loglik_ + 2.0 * P, "bic": bic,
            "icl": -2.0 * self.class_loglik_ + P * log_n,
            "icl_bic": bic + 2.0 * self.entropy_,
        }


# After an online update the fitted attributes are derived from online_ when first read.
for _name in (*online_fitting.ONLINE_FITTED, *online_fitting.GATE_FITTED):
    setattr(MixtureOfLinearRegressions, _name, online_fitting.OnlineDerived(_name))
del _name
