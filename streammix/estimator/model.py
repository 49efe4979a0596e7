"""The scikit-learn style estimator users touch."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
from dataclasses import dataclass

import numpy as np

from streammix.algorithms.em import COLLAPSE_POLICIES, EMSettings, em_steps, warn_not_converged
from streammix.algorithms.information import SE_METHODS
from streammix.algorithms.restarts import CullRule, MultiEStepTask, StatsBundle, run_shared
from streammix.algorithms.squarem import ACCELERATORS, squarem_steps
from streammix.algorithms.standardize import ScaledTask, Scaling
from streammix.algorithms.start.candidates import (
    INIT_METHODS,
    Profile,
    ProfileTask,
    initial_params,
    make_reseeder,
    variance_floor,
)
from streammix.algorithms.tasks import EStepTask, resolve_engine
from streammix.core.checks import DataError, NotFittedError
from streammix.core.mstep import NOISE_MODELS, MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, design_matrix, log_responsibilities
from streammix.data.arrays import DEFAULT_CHUNK_ROWS, as_source
from streammix.estimator.inference import InferenceMixin
from streammix.estimator.online_fitting import OnlineFitMixin
from streammix.estimator.persistence import PersistenceMixin

__all__ = ["MixtureOfLinearRegressions", "NotFittedError"]

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class _FitContext:
    """What pass 0 of a fit found: the source, where passes run, the profile."""

    source: object
    engine: object
    profile: Profile
    seed: int
    d: int
    p: int
    sample: Profile | None = None  # the profile on the fitting scale (standardised or not)
    scaling: Scaling | None = None


class MixtureOfLinearRegressions(OnlineFitMixin, InferenceMixin, PersistenceMixin):
    """Finite mixture of linear regressions fitted by EM, in chunks.

    ``p(y | x) = Σ_j π_j N(y | a_jᵀx + b_j, σ_j²)``.  Each EM iteration is
    one pass over the data (a map over chunks and a tree sum of sufficient
    statistics), so the data need not fit in memory.

    Parameters
    ----------
    n_components : int, default=2
        Number of components m.
    noise : {"per_component", "shared", "fixed"}, default="per_component"
        One σ per component (as flexmix), one σ for all components, or a
        known σ given by ``sigma``.
    sigma : float or array-like of shape (n_components,), optional
        The known noise standard deviation(s) when ``noise="fixed"``.
    fit_intercept : bool, default=True
    tol : float, default=1e-4
        Plain EM stops when the log-likelihood (log-posterior under priors)
        changes by less than ``tol`` in absolute value between two passes;
        SQUAREM when the gain still to come is estimated below ``tol``.  Absolute,
        not relative, so its meaning does not change with n (MATH.md §3.2).
    max_iter : int, default=500
        Maximum number of EM iterations (M-steps) per run; under SQUAREM,
        of passes after the first.
    n_init : int, default=1
        Number of runs from different starting values; the run with the
        highest log-likelihood is kept.
    init : {"auto", "random", "ybins", "resid_bins", "spectral"}, MixtureParams or dict
        Starting values, default "auto".  ``"auto"`` refines several candidates on the
        sample and keeps the best; ``"random"`` is flexmix's random
        partition; ``"ybins"`` is mixtools' y-quantile bins with jitter;
        ``"resid_bins"`` bins the pooled OLS residuals; ``"spectral"`` runs
        short EM in the slope subspace found from the pass-0 moments (Yi,
        Caramanis & Sanghavi 2014; needs an intercept).  A dict with keys
        ``weights``, ``coef``, ``intercept``, ``sigma`` (original scale)
        starts from those values.
    random_state : int or None
        Seed of all random choices (the sample and the starting values).
    variance_floor : float, default=1e-3
        Every σ_j² is kept at or above this multiple of the pooled OLS
        residual variance, so the likelihood stays bounded.
    min_weight : float, default=0.0
        A component whose weight falls below this collapses (flexmix's
        ``minprior``, whose default is 0.05).  Components also collapse when
        their effective number of rows falls below 5 (p + 1).  As in
        flexmix, the rule is checked before every M-step on the weight
        estimate Σwγ_j / Σw of the pass just made (strictly below the
        threshold collapses), and with ``on_collapse="drop"`` EM continues
        with the remaining components; the removal is warned about and
        recorded as ``"event": "dropped [j]"`` in the ``history_`` record
        of the first pass of the reduced model.  One difference: flexmix
        renormalises the remaining posteriors before that M-step, streammix
        uses the remaining components' statistics as they are (no extra
        pass), so the log-likelihood of the pass after the removal differs
        slightly; both then converge to the same optimum
        (tests/test_small_components.py checks both against flexmix).
    on_collapse : {"drop", "reseed", "error"}, default="drop"
        What happens to a collapsed component: removed (with a warning, as
        flexmix does), re-seeded on the worst-explained rows of the sample
        (up to 3 times per run, then dropped), or an error.
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
        Where passes run: default in-process; a :class:`~streammix.DaskEngine`
        or a ``distributed.Client`` (wrapped in a ``DaskEngine``) runs them on
        a Dask cluster.
    step_alpha, step_offset : float, default=0.6, 2.0
        Online EM (:meth:`partial_fit`): step η_k = (k + step_offset)^(−step_alpha)
        (stepwise EM, Liang & Klein 2009; see :mod:`streammix.online`).
    forget : float, optional
        Online EM: constant-step forgetting mode with a window of about
        ``forget`` rows, for drifting streams.  Default: no forgetting (the
        estimate averages the whole stream).
    average : bool or int, default=False
        Online EM: report the Polyak–Ruppert average of the parameters (from
        the 10th M-step, or from the given M-step number).
    accelerate : {"squarem", None}, default="squarem"
        ``"squarem"`` extrapolates EM steps (SQUAREM, MATH.md §3.1) to need
        fewer passes over the data (benchmarks/bench_passes.py, 2e6 rows:
        0.30 to 0.41 of the passes and of the time of plain EM); it then stops
        when the estimated gain still to come, from the size of the next EM
        step, is below ``tol``, ``max_iter`` bounds the passes, and
        ``history_`` also holds the extrapolated points (which may lie below
        their predecessors).  None runs plain EM, monotone pass by pass.
    cull_restarts : bool, default=True
        With ``n_init > 1`` all runs share each pass over the data.  From
        the 5th pass on, a run whose log-likelihood is more than 0.05 nats
        per unit weight below the best run's, or whose parameters are within
        P/2 nats (P free parameters; in the best run's information metric)
        of the best run's, is stopped (:class:`streammix.restarts.CullRule`).
    standardize : bool, default=False
        Run EM on features and target standardised with the weighted means
        and standard deviations of pass 0 (MATH.md §1.6) and map the fit
        back (:mod:`streammix.standardize`): the same maximum-likelihood
        optimum, better conditioned Gram matrices; priors (``ridge``,
        ``prior_scale``) then apply on the standardised scale.

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
    converged_ : bool
    history_ : list of dict
        One record per pass of the kept run: iteration, loglik, objective,
        number of components and any event (a dropped or re-seeded component).
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
        share each scan).

    Notes
    -----
    Components are reported in a canonical order: decreasing weight.
    ``sample_weight`` holds frequency weights; N = Σw is the sample size in
    BIC.
    """

    def __init__(self, n_components: int = 2, *, noise: str = "per_component", sigma=None,
                 fit_intercept: bool = True, tol: float = 1e-4, max_iter: int = 500,
                 n_init: int = 1, init="auto", random_state=None,
                 variance_floor: float = 1e-3, min_weight: float = 0.0,
                 on_collapse: str = "drop", ridge: float = 0.0, prior_dof: float = 0.0,
                 prior_scale: float = 0.0, dirichlet_alpha: float = 1.0,
                 df_correction: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 init_sample_size: int = 100_000, engine=None, step_alpha: float = 0.6,
                 step_offset: float = 2.0, forget: float | None = None, average=False,
                 accelerate="squarem", cull_restarts: bool = True,
                 standardize: bool = False):
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
        self.on_collapse = on_collapse
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

    # ------------------------------------------------------------------ params
    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """Hyper-parameters as a dict (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params) -> MixtureOfLinearRegressions:
        """Set hyper-parameters; unknown names raise ``ValueError``."""
        valid = set(self._get_param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}; "
                                 f"valid ones are {sorted(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        signature = inspect.signature(type(self).__init__)
        defaults = {k: v.default for k, v in signature.parameters.items()}
        shown = []
        for name, value in self.get_params().items():
            default = defaults[name]
            try:
                same = bool(value == default) if not isinstance(value, np.ndarray) else False
            except (TypeError, ValueError):
                same = False
            if not same or name == "n_components":
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # -------------------------------------------------------------- validation
    def _check_hyperparameters(self) -> None:
        m = self.n_components
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"n_components must be an integer >= 1, got {m!r}")
        if self.noise not in NOISE_MODELS:
            raise ValueError(f"noise must be one of {NOISE_MODELS}, got {self.noise!r}")
        if self.noise == "fixed":
            if self.sigma is None:
                raise ValueError("noise='fixed' needs sigma (the known noise standard deviation)")
            s = np.asarray(self.sigma, dtype=float)
            if s.ndim > 1 or (s.ndim == 1 and s.shape[0] != m) or np.any(~(s > 0)) \
                    or not np.all(np.isfinite(s)):
                raise ValueError(f"sigma must be a positive finite scalar or {m} values, "
                                 f"got {self.sigma!r}")
        elif self.sigma is not None:
            raise ValueError("sigma is only used with noise='fixed'")
        for name in ("max_iter", "n_init", "chunk_rows", "init_sample_size"):
            value = getattr(self, name)
            low = 0 if name == "max_iter" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.init, (MixtureParams, dict)) or self.init in INIT_METHODS):
            raise ValueError(f"init must be one of {INIT_METHODS}, a dict of starting values "
                             f"or MixtureParams, got {self.init!r}")
        if self.on_collapse not in COLLAPSE_POLICIES:
            raise ValueError(f"on_collapse must be one of {COLLAPSE_POLICIES}, "
                             f"got {self.on_collapse!r}")
        if not (0 <= self.min_weight < 1):
            raise ValueError(f"min_weight must be in [0, 1), got {self.min_weight!r}")
        if not (self.tol >= 0):
            raise ValueError(f"tol must be >= 0, got {self.tol!r}")
        if self.accelerate not in ACCELERATORS:
            raise ValueError(f"accelerate must be one of {ACCELERATORS}, "
                             f"got {self.accelerate!r}")

    def n_parameters(self, n_components: int | None = None, n_features: int | None = None) -> int:
        """Number of free parameters P (MATH.md §7)."""
        m = self.n_components_ if n_components is None else n_components
        p = (self.n_features_in_ if n_features is None else n_features) + int(self.fit_intercept)
        if self.noise == "per_component":
            return m * (p + 2) - 1
        if self.noise == "shared":
            return m * p + 1 + m - 1
        return m * p + m - 1

    def _start_params(self, n_features: int):
        init = self.init
        if isinstance(init, MixtureParams) and init.n_components != self.n_components:
            raise ValueError(f"init has {init.n_components} components, n_components is "
                             f"{self.n_components}")
        if not isinstance(init, dict):
            return init
        try:
            weights = np.asarray(init["weights"], float)
            coef = np.asarray(init["coef"], float).reshape(len(weights), n_features)
            sigma = np.broadcast_to(np.asarray(init["sigma"], float), weights.shape)
            if self.fit_intercept:
                intercept = np.asarray(init.get("intercept", np.zeros(len(weights))), float)
                coef = np.column_stack([intercept, coef])
        except KeyError as exc:
            raise ValueError(f"init dict is missing {exc.args[0]!r}; it needs weights, coef, "
                             "intercept and sigma") from None
        if len(weights) != self.n_components:
            raise ValueError(f"init has {len(weights)} components, n_components is "
                             f"{self.n_components}")
        return MixtureParams(weights, coef, sigma**2)

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None, sample_weight=None, *, se: bool | str = False,
            callback=None, checkpoint=None, resume: bool = False,
            ) -> MixtureOfLinearRegressions:
        """Fit the mixture by EM.

        Parameters
        ----------
        X : array-like of shape (n, d), DataFrame, or a source
            Features, or a source (e.g. :class:`streammix.ParquetSource`)
            that also supplies the target and weights.
        y : array-like of shape (n,), optional
            Target; required unless ``X`` is a source.
        sample_weight : array-like of shape (n,), optional
            Non-negative frequency weights.
        se : bool or {"louis", "opg", "sandwich"}, default=False
            Also compute standard errors (one more pass, see
            :meth:`compute_se`); ``True`` means ``"louis"``.
        callback : callable, optional
            ``callback(record)`` after each EM pass, with the pass's history
            record (iteration, loglik, objective, n_components); iterations
            restart at 0 for each of the ``n_init`` runs.
        checkpoint : str or path, optional
            A folder where the fit is saved as it goes (see
            :mod:`streammix.checkpoint`): fingerprints of the data and of the
            settings and the random seed once, then the statistics of every
            pass over the data, atomically, as soon as the pass is done.  A
            folder that already holds a checkpoint is refused unless
            ``resume=True``.  It is a ``fit`` argument, not a hyper-parameter:
            where a fit saves its progress does not change its result.
        resume : bool, default=False
            Continue the fit saved in ``checkpoint``: the saved passes are
            replayed without reading the data, then the fit goes on; the
            result equals that of an uninterrupted fit, bit for bit.  A
            checkpoint made from other data (another plan, files of other
            size or modification time) or with other hyper-parameters raises
            :class:`streammix.checkpoint.CheckpointError`.

        Returns
        -------
        self
        """
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=FOLDER")
        if se is not False and se is not None:
            method = "louis" if se is True else se
            if method not in SE_METHODS:
                raise ValueError(f"se must be True, False or one of {SE_METHODS}, got {se!r}")
        self._check_hyperparameters()
        if self.__dict__.get("_online_stale"):
            self._set_online_fitted()  # what a failed fit leaves is the online estimate
        self.__dict__.pop("online_", None)  # a batch fit starts afresh
        source = as_source(X, y, sample_weight, chunk_rows=self.chunk_rows)
        saver = None
        if checkpoint is not None:
            from streammix.estimator.checkpoint import Checkpoint, source_fingerprint
            saver = Checkpoint(checkpoint, source_fingerprint(source),
                               self.to_dict()["hyperparameters"])
            if resume:
                saver.load()
        if saver is not None and resume:
            seed = saver.seed
        else:
            seed = int(np.random.default_rng(self.random_state).integers(2**31))
            if saver is not None:
                saver.start(seed)
        ctx = self._profile_pass(source, seed=seed)
        if saver is not None:
            from streammix.estimator.checkpoint import profile_digest
            saver.check_profile(profile_digest(ctx.profile))
        m = self.n_components
        start = self._start_params(ctx.d)
        explicit = isinstance(start, MixtureParams)
        if explicit and start.n_coef != ctx.p:
            raise ValueError(f"init has {start.n_coef} coefficients per component, "
                             f"the data needs {ctx.p}")
        settings = self._em_settings(ctx, m)
        n_runs = 1 if explicit else self.n_init
        pass_many = self._shared_pass(ctx)
        if saver is not None:
            pass_many = saver.wrap(pass_many)
            callback = saver.quiet(callback)
        best, n_passes = self._fit_shared(ctx, m, start, settings, n_runs, pass_many, callback)
        warn_not_converged(best, stacklevel=2)
        if ctx.scaling is not None:
            best = ctx.scaling.unscale(best)
        self._set_fitted(best, ctx.source, ctx.profile)
        self.n_passes_ = n_passes + 1
        if se is not False and se is not None:
            self._compute_se(ctx.source, ctx.engine, method)
        return self

    def _fit_shared(self, ctx: _FitContext, m: int, start, settings, n_runs: int, pass_many,
                    callback):
        """All runs in the same scans (SQUAREM or plain EM each); the best result."""
        runs = [self._run_steps(ctx, m, start, run, settings, callback=callback)
                for run in range(n_runs)]
        cull = CullRule(options=settings.mstep) if self.cull_restarts else None
        shared = run_shared(runs, pass_many, cull=cull)
        best = None
        for run, result in enumerate(shared.results):
            if result is None:
                continue
            logger.info("run %d: loglik %.10g after %d iterations (converged: %s)",
                        run, result.loglik, result.n_iter, result.converged)
            if best is None or result.objective > best.objective:
                best = result
        return best, shared.n_passes

    def _profile_pass(self, X, y=None, sample_weight=None, *, seed: int | None = None,
                      ) -> _FitContext:
        """Pass 0: the source, its profile (counts, sample, moments) and the seed.

        ``seed`` defaults to one drawn from ``random_state``.
        """
        source = as_source(X, y, sample_weight, chunk_rows=self.chunk_rows)
        if seed is None:
            seed = int(np.random.default_rng(self.random_state).integers(2**31))
        engine = resolve_engine(self.engine)
        d = source.n_features
        profile = engine.map_reduce(source, ProfileTask(seed, self.init_sample_size),
                                    Profile.empty(d, self.init_sample_size))
        if profile.n_positive == 0:
            raise DataError("the data has no rows with positive weight")
        sample, scaling = profile, None
        if self.standardize:
            scaling = Scaling.from_moments(profile.moments, self.fit_intercept)
            Xs, ys = scaling.data(profile.X, profile.y)
            sample = dataclasses.replace(profile, X=Xs, y=ys,
                                         moments=scaling.moments(profile.moments))
        return _FitContext(source, engine, profile, seed, d, d + int(self.fit_intercept),
                           sample, scaling)

    def _em_settings(self, ctx: _FitContext, m: int) -> EMSettings:
        """EM settings for ``m`` components; checks that the data can carry them."""
        d, p, profile = ctx.d, ctx.p, ctx.sample
        n_params = self.n_parameters(m, d)
        if profile.n_positive <= n_params:
            raise DataError(
                f"{profile.n_positive} rows with positive weight are too few for "
                f"{n_params} free parameters ({m} components, {p} coefficients each); "
                "use fewer components or more data"
            )
        Xd_sample = design_matrix(profile.X, self.fit_intercept)
        floor = variance_floor(Xd_sample, profile.y, self.variance_floor)
        options = self._mstep_options(floor, m)
        if options.fixed_sigma2 is not None and ctx.scaling is not None:
            options = dataclasses.replace(
                options, fixed_sigma2=options.fixed_sigma2 / ctx.scaling.s_y**2)
        return EMSettings(mstep=options, tol=self.tol, max_iter=self.max_iter,
                          min_weight=self.min_weight, on_collapse=self.on_collapse)

    def _run_start(self, ctx: _FitContext, m: int, start, run: int, settings):
        """Starting values of run ``run`` and its re-seeding function."""
        fi = self.fit_intercept
        rng = np.random.default_rng([ctx.seed, run])
        if isinstance(start, MixtureParams) and ctx.scaling is not None:
            start = ctx.scaling.forward(start)
        sample = ctx.sample
        params0 = initial_params(sample.X, sample.y, m, method=start,
                                 fit_intercept=fi, settings=settings, rng=rng,
                                 moments=sample.moments)
        return params0, make_reseeder(sample.X, sample.y, fi, settings.mstep)

    def _run_steps(self, ctx: _FitContext, m: int, start, run: int, settings=None,
                   callback=None):
        """The step generator of run ``run`` (its own starting values) for ``m`` components.

        ``callback(record)`` is called after each of its passes with a copy
        of the history record plus ``"run": run`` (runs share passes, so
        their records interleave).
        """
        settings = self._em_settings(ctx, m) if settings is None else settings
        tagged = None
        if callback is not None:
            def tagged(record):
                callback({**record, "run": run})
        params0, reseed = self._run_start(ctx, m, start, run, settings)
        if self.accelerate == "squarem":
            return squarem_steps(params0, settings, reseed=reseed, callback=tagged)
        return em_steps(params0, settings, reseed=reseed, callback=tagged)

    def _shared_pass(self, ctx: _FitContext):
        """``pass_many(params_tuple)``: one scan computing statistics for every set."""
        fi = self.fit_intercept

        def pass_many(params: tuple[MixtureParams, ...]) -> StatsBundle:
            task = MultiEStepTask(params, fi)
            if ctx.scaling is not None:
                task = ScaledTask(task, ctx.scaling)
            return ctx.engine.map_reduce(ctx.source, task, StatsBundle.zeros(params))

        return pass_many

    def _mstep_options(self, floor: float, n_components: int | None = None) -> MStepOptions:
        m = self.n_components if n_components is None else n_components
        fixed = None
        if self.noise == "fixed":
            fixed = np.broadcast_to(np.asarray(self.sigma, float) ** 2, (m,)).copy()
        return MStepOptions(
            noise=self.noise, fixed_sigma2=fixed, variance_floor=floor, ridge=self.ridge,
            intercept=self.fit_intercept, prior_dof=self.prior_dof,
            prior_scale=self.prior_scale, dirichlet_alpha=self.dirichlet_alpha,
            df_correction=self.df_correction,
        )

    def _set_fitted(self, result, source, profile) -> None:
        for name in self._INFERENCE:
            self.__dict__.pop(name, None)
        self.__dict__.pop("_online_stale", None)  # all fitted attributes are set here
        params = result.params
        order = np.lexsort((params.beta[:, 0], -params.weights))
        params = params.permute(order)
        self.params_ = params
        self.n_features_in_ = source.n_features
        self.feature_names_in_ = list(getattr(source, "feature_names", []))
        self.n_rows_ = int(profile.n_rows)
        self.sum_weights_ = float(profile.sum_w)
        self.loglik_ = float(result.loglik)
        self.objective_ = float(result.objective)
        self.n_iter_ = int(result.n_iter)
        self.converged_ = bool(result.converged)
        self.history_ = result.history
        self.variance_floor_ = float(result.settings.mstep.variance_floor)
        self.class_loglik_ = float(result.stats.class_loglik)
        self.entropy_ = float(result.stats.entropy)
        self._set_public_arrays()

    def _set_public_arrays(self) -> None:
        params = self.params_
        self.n_components_ = params.n_components
        self.weights_ = params.weights.copy()
        if self.fit_intercept:
            self.intercept_ = params.beta[:, 0].copy()
            self.coef_ = params.beta[:, 1:].copy()
        else:
            self.intercept_ = np.zeros(params.n_components)
            self.coef_ = params.beta.copy()
        self.sigma_ = np.sqrt(params.sigma2)

    # ----------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _design(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}; the model was fitted on "
                             f"{self.n_features_in_} features")
        return design_matrix(X, self.fit_intercept)

    def _design_y(self, X, y):
        Xd = self._design(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if y.shape[0] != Xd.shape[0]:
            raise ValueError(f"X has {Xd.shape[0]} rows but y has {y.shape[0]}")
        return Xd, y

    def predict(self, X) -> np.ndarray:
        """Mixture mean E[y | x] = Σ_j π_j (a_jᵀx + b_j)."""
        self._check_fitted()
        return self._design(X) @ self.params_.beta.T @ self.params_.weights

    def predict_components(self, X) -> np.ndarray:
        """Mean of each component, shape (n, m)."""
        self._check_fitted()
        return self._design(X) @ self.params_.beta.T

    def predict_proba(self, X, y) -> np.ndarray:
        """Posterior responsibilities P(component j | x, y), shape (n, m)."""
        self._check_fitted()
        _, log_resp, _ = log_responsibilities(*self._design_y(X, y), self.params_)
        return np.exp(log_resp)

    def score_samples(self, X, y) -> np.ndarray:
        """Log-likelihood log p(y_i | x_i) of each row."""
        self._check_fitted()
        ll, _, _ = log_responsibilities(*self._design_y(X, y), self.params_)
        return ll

    def _pass_stats(self, X, y, sample_weight) -> SuffStats:
        self._check_fitted()
        source = self._source_like_fit(X, y, sample_weight)
        return self._estep_pass(resolve_engine(self.engine), source, self.params_)

    def _source_like_fit(self, X, y, sample_weight):
        """A source of data with as many features as the fit had (else ValueError)."""
        source = as_source(X, y, sample_weight, chunk_rows=self.chunk_rows)
        if source.n_features != self.n_features_in_:
            raise ValueError(f"the data has {source.n_features} features; the model was "
                             f"fitted on {self.n_features_in_}")
        return source

    def _estep_pass(self, engine, source, params: MixtureParams) -> SuffStats:
        """One E-step pass over ``source`` at ``params``."""
        return engine.map_reduce(source, EStepTask(params, self.fit_intercept),
                                 SuffStats.zeros(params.n_components, params.n_coef))

    def score(self, X, y=None, sample_weight=None) -> float:
        """Mean log-likelihood per unit weight, Σ w log p / Σ w."""
        stats = self._pass_stats(X, y, sample_weight)
        return stats.loglik / stats.sum_w

    def bic(self, X, y=None, sample_weight=None) -> float:
        """Bayesian information criterion −2ℓ + P log N (lower is better)."""
        stats = self._pass_stats(X, y, sample_weight)
        return -2.0 * stats.loglik + self.n_parameters() * math.log(stats.sum_w)

    def aic(self, X, y=None, sample_weight=None) -> float:
        """Akaike information criterion −2ℓ + 2P (lower is better)."""
        stats = self._pass_stats(X, y, sample_weight)
        return -2.0 * stats.loglik + 2.0 * self.n_parameters()

    def information_criteria(self) -> dict:
        """AIC, BIC, ICL and ICL-BIC of the fit, from its final pass (MATH.md §7)."""
        self._check_fitted()
        P = self.n_parameters()
        log_n = math.log(self.sum_weights_)
        bic = -2.0 * self.loglik_ + P * log_n
        return {
            "loglik": self.loglik_, "n_parameters": P, "n": self.sum_weights_,
            "aic": -2.0 * self.loglik_ + 2.0 * P, "bic": bic,
            "icl": -2.0 * self.class_loglik_ + P * log_n,
            "icl_bic": bic + 2.0 * self.entropy_,
        }
