"""The estimator's settings, their checks and its fitted state, as module functions.

Every function here takes the estimator (a
:class:`~streammix.MixtureOfLinearRegressions`) as its first argument and
reads its hyper-parameters, or sets its fitted attributes.  The fit pipeline
(:mod:`streammix.estimator.fitting`), online fitting, inference, persistence
and model selection all go through these, so a fitted attribute is set in
one place and listed once (:data:`FITTED`).
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.em import COLLAPSE_POLICIES, EMSettings
from streammix.algorithms.squarem import ACCELERATORS
from streammix.algorithms.start.candidates import INIT_METHODS
from streammix.algorithms.tasks import EStepTask
from streammix.core.checks import check_fitted
from streammix.core.mstep import NOISE_MODELS, MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, design_matrix
from streammix.data.frames import (
    computed_dask_frame,
    is_frame,
    names_mismatch_message,
    select_features,
)
from streammix.data.resolve import as_source, is_source
from streammix.engines.resolve import resolve_engine
from streammix.estimator.constraints import check_fixed
from streammix.exceptions import DataError

__all__ = [
    "FITTED", "SAVED", "INFERENCE", "check_hyperparameters", "mstep_options", "start_params",
    "n_parameters", "draw_seed", "run_rng", "em_settings", "canonical_order", "set_fitted",
    "set_public_arrays", "source_like_fit", "estep_pass", "clear_fit", "ONLINE_STALE",
    "pass_stats", "design", "design_xy", "fitted_feature_names", "features_like_fit",
    "require_target",
]

#: The fitted attributes of any fit (batch, online or loaded), in one list.
FITTED = ("params_", "n_features_in_", "feature_names_in_", "n_rows_", "sum_weights_",
          "loglik_", "objective_", "class_loglik_", "entropy_", "variance_floor_", "n_iter_",
          "converged_", "history_", "n_components_", "weights_", "intercept_", "coef_",
          "sigma_")

#: The fitted attributes a model file stores (``params_`` is stored as a record of its
#: own; the public arrays ``weights_`` ... ``sigma_`` are derived from it on load).
SAVED = ("n_features_in_", "feature_names_in_", "n_rows_", "sum_weights_", "loglik_",
         "objective_", "n_iter_", "converged_", "history_", "class_loglik_", "entropy_",
         "variance_floor_")

#: The attributes set by standard errors (``compute_se`` or ``fit(se=...)``).
INFERENCE = ("vcov_", "vcov_names_", "bse_", "se_method_", "score_gap_")


def check_hyperparameters(model) -> None:
    """Raise ``ValueError`` naming the first hyper-parameter of ``model`` that is invalid."""
    m = model.n_components
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"n_components must be an integer >= 1, got {m!r}")
    if model.noise not in NOISE_MODELS:
        raise ValueError(f"noise must be one of {NOISE_MODELS}, got {model.noise!r}")
    if model.noise == "fixed":
        if model.sigma is None:
            raise ValueError("noise='fixed' needs sigma (the known noise standard deviation)")
        s = np.asarray(model.sigma, dtype=float)
        if s.ndim > 1 or (s.ndim == 1 and s.shape[0] != m) or np.any(~(s > 0)) \
                or not np.all(np.isfinite(s)):
            raise ValueError(f"sigma must be a positive finite scalar or {m} values, "
                             f"got {model.sigma!r}")
    elif model.sigma is not None:
        raise ValueError("sigma is only used with noise='fixed'")
    for name in ("max_iter", "n_init", "chunk_rows", "init_sample_size"):
        value = getattr(model, name)
        low = 0 if name == "max_iter" else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(model.init, (MixtureParams, dict)) or model.init in INIT_METHODS):
        raise ValueError(f"init must be one of {INIT_METHODS}, a dict of starting values "
                         f"or MixtureParams, got {model.init!r}")
    if model.on_collapse not in COLLAPSE_POLICIES:
        raise ValueError(f"on_collapse must be one of {COLLAPSE_POLICIES}, "
                         f"got {model.on_collapse!r}")
    if not (0 <= model.min_weight < 1):
        raise ValueError(f"min_weight must be in [0, 1), got {model.min_weight!r}")
    if model.min_eff_rows is not None and not (model.min_eff_rows >= 0):
        raise ValueError(f"min_eff_rows must be >= 0 or None, got {model.min_eff_rows!r}")
    if not (model.min_sigma_ratio >= 0):
        raise ValueError(f"min_sigma_ratio must be >= 0, got {model.min_sigma_ratio!r}")
    yr = model.y_resolution
    if not (yr is None or (isinstance(yr, str) and yr == "auto")
            or (not isinstance(yr, (bool, str)) and yr >= 0)):
        raise ValueError(f"y_resolution must be 'auto', a number >= 0 or None, got {yr!r}")
    mr = model.max_reseeds
    if isinstance(mr, bool) or not isinstance(mr, (int, np.integer)) or mr < 0:
        raise ValueError(f"max_reseeds must be an integer >= 0, got {mr!r}")
    if not (model.tol >= 0):
        raise ValueError(f"tol must be >= 0, got {model.tol!r}")
    check_fixed(model)
    if model.accelerate not in ACCELERATORS:
        raise ValueError(f"accelerate must be one of {ACCELERATORS}, "
                         f"got {model.accelerate!r}")


def mstep_options(model, floor: float, n_components: int | None = None) -> MStepOptions:
    """The M-step options of ``model``'s settings, with the absolute variance ``floor``."""
    m = model.n_components if n_components is None else n_components
    fixed = None
    if model.noise == "fixed":
        fixed = np.broadcast_to(np.asarray(model.sigma, float) ** 2, (m,)).copy()
    return MStepOptions(
        noise=model.noise, fixed_sigma2=fixed, variance_floor=floor, ridge=model.ridge,
        intercept=model.fit_intercept, prior_dof=model.prior_dof,
        prior_scale=model.prior_scale, dirichlet_alpha=model.dirichlet_alpha,
        df_correction=model.df_correction,
    )


def start_params(model, n_features: int):
    """``model.init`` as a method name or :class:`MixtureParams` (a dict is converted)."""
    init = model.init
    if isinstance(init, MixtureParams) and init.n_components != model.n_components:
        raise ValueError(f"init has {init.n_components} components, n_components is "
                         f"{model.n_components}")
    if not isinstance(init, dict):
        return init
    try:
        weights = np.asarray(init["weights"], float)
        coef = np.asarray(init["coef"], float).reshape(len(weights), n_features)
        sigma = np.broadcast_to(np.asarray(init["sigma"], float), weights.shape)
        if model.fit_intercept:
            intercept = np.asarray(init.get("intercept", np.zeros(len(weights))), float)
            coef = np.column_stack([intercept, coef])
    except KeyError as exc:
        raise ValueError(f"init dict is missing {exc.args[0]!r}; it needs weights, coef, "
                         "intercept and sigma") from None
    if len(weights) != model.n_components:
        raise ValueError(f"init has {len(weights)} components, n_components is "
                         f"{model.n_components}")
    return MixtureParams(weights, coef, sigma**2)


def n_parameters(noise: str, n_components: int, n_coef: int) -> int:
    """Free parameters P of a mixture (the mathematics page (docs/mathematics.rst), §7)."""
    m, p = n_components, n_coef
    if noise == "per_component":
        return m * (p + 2) - 1
    if noise == "shared":
        return m * p + 1 + m - 1
    return m * p + m - 1


def draw_seed(random_state) -> int:
    """The one seed every random choice of a fit derives from, drawn from ``random_state``."""
    return int(np.random.default_rng(random_state).integers(2**31))


def run_rng(seed: int, run: int) -> np.random.Generator:
    """The random generator of run ``run`` of a fit whose seed is ``seed``."""
    return np.random.default_rng([seed, run])


def em_settings(model, options: MStepOptions, max_iter: int,
                pooled_sigma2: float | None = None,
                resolution_sigma2: float | None = None) -> EMSettings:
    """The EM settings of ``model`` with M-step ``options``, at most ``max_iter`` iterations.

    ``pooled_sigma2`` (the pooled OLS residual variance on the fitting scale)
    enables the spike rule of :mod:`streammix.algorithms.degeneracy`;
    ``resolution_sigma2`` (δ²/12 on the fitting scale) its resolution rule.
    """
    return EMSettings(mstep=options, tol=model.tol, max_iter=max_iter,
                      min_weight=model.min_weight, min_eff_rows=model.min_eff_rows,
                      min_sigma_ratio=model.min_sigma_ratio, pooled_sigma2=pooled_sigma2,
                      on_collapse=model.on_collapse, max_reseeds=model.max_reseeds,
                      resolution_sigma2=resolution_sigma2)


def canonical_order(params: MixtureParams) -> MixtureParams:
    """``params`` with its components in the reported order: decreasing weight
    (ties by intercept or first coefficient)."""
    return params.permute(np.lexsort((params.beta[:, 0], -params.weights)))


#: Key, in the estimator's ``__dict__``, of the flag "the fitted attributes are out of
#: date after an online update" (see :mod:`streammix.estimator.online_fitting`).
ONLINE_STALE = "_online_stale"


def clear_fit(model) -> None:
    """Forget what describes another fit: standard errors, ``n_passes_``, online staleness,
    the group count of a grouped fit."""
    for name in (*INFERENCE, "n_passes_", "passed_over_", ONLINE_STALE, "n_groups_"):
        model.__dict__.pop(name, None)


def set_fitted(model, result, source, profile) -> None:
    """Set every fitted attribute from an EM result on ``source`` and the pass-0 ``profile``."""
    clear_fit(model)
    model.params_ = canonical_order(result.params)
    model.n_features_in_ = source.n_features
    set_feature_names(model, source)
    design = getattr(source, "formula_design", None)
    if design is not None:
        model.formula_ = design
    else:
        model.__dict__.pop("formula_", None)
    model.n_rows_ = int(profile.n_rows)
    model.sum_weights_ = float(profile.sum_w)
    model.loglik_ = float(result.loglik)
    model.objective_ = float(result.objective)
    model.n_iter_ = int(result.n_iter)
    model.converged_ = bool(result.converged)
    model.history_ = result.history
    model.variance_floor_ = float(result.settings.mstep.variance_floor)
    model.class_loglik_ = float(result.stats.class_loglik)
    model.entropy_ = float(result.stats.entropy)
    set_public_arrays(model)


def set_public_arrays(model) -> None:
    """``n_components_``, ``weights_``, ``intercept_``, ``coef_``, ``sigma_`` from ``params_``."""
    params = model.params_
    model.n_components_ = params.n_components
    model.weights_ = params.weights.copy()
    if model.fit_intercept:
        model.intercept_ = params.beta[:, 0].copy()
        model.coef_ = params.beta[:, 1:].copy()
    else:
        model.intercept_ = np.zeros(params.n_components)
        model.coef_ = params.beta.copy()
    model.sigma_ = np.sqrt(params.sigma2)


def set_feature_names(model, source) -> None:
    """``feature_names_in_`` from ``source``: its column names (an object array), or
    nothing when it was built from an array without names (scikit-learn's convention)."""
    model.__dict__.pop("feature_names_in_", None)
    if getattr(source, "feature_names_given", True):
        model.feature_names_in_ = np.asarray(
            [str(n) for n in getattr(source, "feature_names", [])], dtype=object)


def fitted_feature_names(model) -> list[str] | None:
    """The names of the columns ``model`` was fitted on, or None (fitted on an array)."""
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def features_like_fit(model, X, stacklevel: int = 4):
    """``X`` with the fit's features: a table's columns by name, in the fit's order;
    an array's (or a Dask collection's, or a source's) as they are, an array's with a
    :class:`~streammix.FeatureNamesWarning` when the model was fitted on names."""
    if is_frame(X):
        return select_features(X, fitted_feature_names(model), model.n_features_in_,
                               "the model", stacklevel=stacklevel)
    names = fitted_feature_names(model)
    columns = getattr(X, "columns", None)
    if names is not None and columns is not None and not is_source(X):  # a Dask DataFrame
        message = names_mismatch_message(names, [str(c) for c in columns])
        if message is not None:
            raise DataError(message)
        return X[names]
    if names is not None and columns is None and not is_source(X) \
            and not hasattr(X, "__dask_graph__"):  # an array: by position, which warns
        return select_features(X, names, model.n_features_in_, "the model",
                               stacklevel=stacklevel)
    return X


def source_like_fit(model, X, y, sample_weight):
    """A source of data with the fit's features (else ValueError).

    Tables give their columns by name; a source must have the fit's feature
    names in the fit's order, when the model was fitted on names.  A model
    fitted with a formula encodes tables and formula sources with its own
    levels (:func:`streammix.estimator.formulas.source_for_model`).
    """
    if getattr(model, "formula_", None) is not None:
        from streammix.estimator.formulas import source_for_model
        source = source_for_model(model, X, y, sample_weight)
        if source is not None:
            return source
    if y is None and is_frame(X):
        raise DataError(f"y is required: X is a table ({type(X).__name__}) whose columns give "
                        "the features only; pass its target column as y, e.g. "
                        "score(frame, frame['y'])")
    source = as_source(features_like_fit(model, X, stacklevel=6), y, sample_weight,
                       chunk_rows=model.chunk_rows)
    names = fitted_feature_names(model)
    if names is not None and is_source(X) and getattr(source, "feature_names_given", True):
        given = [str(n) for n in getattr(source, "feature_names", names)]
        message = names_mismatch_message(names, given)
        if message is not None:
            raise DataError(message)
        if given != names:
            raise DataError(f"the source's features {given} are those of the fit in another "
                            f"order; give them in the fit's order, features={names}")
    if source.n_features != model.n_features_in_:
        raise ValueError(f"the data has {source.n_features} features; the model was "
                         f"fitted on {model.n_features_in_}")
    return source


def require_target(source, what: str = "this") -> None:
    """Refuse a source without a target (``target=None``: data to predict) for ``what``."""
    if is_source(source) and getattr(source, "target", "") is None:
        raise DataError(f"{what} needs the target, and the source has none (target=None); "
                        "name its target column")


def estep_pass(model, engine, source, params: MixtureParams) -> SuffStats:
    """One E-step pass over ``source`` at ``params``."""
    return engine.map_reduce(source, EStepTask(params, model.fit_intercept),
                             SuffStats.zeros(params.n_components, params.n_coef))


def pass_stats(model, X, y, sample_weight) -> SuffStats:
    """One E-step pass at the fitted parameters over data like the fit's."""
    check_fitted(model)
    if hasattr(model, "concomitant_coef_"):
        raise ValueError("score, bic and aic do not take concomitant variables yet: use "
                         "information_criteria() (the fit's own data) or score_samples")
    source = source_like_fit(model, X, y, sample_weight)
    require_target(source, "a pass of score, bic or aic")
    return estep_pass(model, resolve_engine(model.engine, source), source, model.params_)


def design(model, X, stacklevel: int = 4) -> np.ndarray:
    """The design matrix of features ``X``: a table's columns by name (in the fit's
    order), an array's by position (as many as the fit had, else ValueError); a
    formula model encodes a table with its formula.  A Dask DataFrame is a table."""
    formula = getattr(model, "formula_", None)
    X = computed_dask_frame(X, None if formula is not None else fitted_feature_names(model))
    if formula is not None and is_frame(X):
        from streammix.estimator.formulas import encode_frame
        return design_matrix(encode_frame(model.formula_, X), model.fit_intercept)
    X = select_features(X, fitted_feature_names(model), model.n_features_in_, "the model",
                        stacklevel=stacklevel)
    return design_matrix(X, model.fit_intercept)


def design_xy(model, X, y):
    """The design matrix of ``X`` and the target ``y`` as float arrays of matching length."""
    Xd = design(model, X, stacklevel=6)  # warnings point at the caller of predict_proba & co.
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.shape[0] != Xd.shape[0]:
        raise ValueError(f"X has {Xd.shape[0]} rows but y has {y.shape[0]}")
    return Xd, y
