"""Online EM on the estimator: ``partial_fit``, its lazily derived fitted attributes, ``polish``.

The state machine itself is :class:`streammix.algorithms.online.OnlineEM`,
kept in the estimator's ``online_``; :class:`streammix.MixtureOfLinearRegressions`
calls the functions here.  After an online update the fitted attributes
(:data:`streammix.estimator.base.FITTED`) are out of date and removed:
deriving them (sorting the components, copying arrays and the history) costs
as much as the rest of a small batch's update, and a stream may go on for
many batches before anyone looks.  Each is an :class:`OnlineDerived`
attribute of the class, which derives them all from ``online_`` when one is
first read.
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.em import run_em
from streammix.algorithms.online import OnlineEM, OnlineSettings
from streammix.algorithms.online_gate import OnlineGatedEM
from streammix.algorithms.start.candidates import variance_floor
from streammix.algorithms.start.profile import Profile
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, design_matrix
from streammix.data.frames import is_frame
from streammix.data.streams import check_batch_values, unchecked_batch_arrays
from streammix.engines.resolve import resolve_engine
from streammix.estimator import base, formulas
from streammix.estimator import online_gate_fitting as online_gate
from streammix.estimator.constraints import refuse_online
from streammix.exceptions import DataError, NotFittedError

__all__ = ["partial_fit", "polish", "online_updated", "set_online_fitted", "drop_online_state",
           "OnlineDerived", "ONLINE_FITTED", "GATE_FITTED"]

#: The fitted attributes of an online gate (concomitant variables), derived likewise.
GATE_FITTED = online_gate.GATE_FITTED

#: The fitted attributes that describe the online estimate; after a
#: ``partial_fit`` they are derived from ``online_`` when first read.
ONLINE_FITTED = tuple(name for name in base.FITTED
                      if name not in ("n_features_in_", "feature_names_in_"))


class OnlineDerived:
    """A fitted attribute that, after an online update, is derived from ``online_`` when read.

    A data descriptor: the value lives in the instance's ``__dict__`` under
    the attribute's name; when it is missing there and the online fit is
    out of date, :func:`set_online_fitted` derives every fitted attribute.
    """

    def __init__(self, name: str):
        self.name = name

    def __get__(self, model, owner=None):
        if model is None:
            return self
        d = model.__dict__
        if self.name not in d and d.get(base.ONLINE_STALE):
            set_online_fitted(model)
        try:
            return d[self.name]
        except KeyError:
            raise AttributeError(f"{type(model).__name__!r} object has no attribute "
                                 f"{self.name!r}") from None

    def __set__(self, model, value) -> None:
        model.__dict__[self.name] = value

    def __delete__(self, model) -> None:
        try:
            del model.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None


def partial_fit(model, X, y=None, sample_weight=None, *, target: str | None = None,
                features=None, weight: str | None = None, batch_id=None, concomitant=None,
                ) -> None:
    """Update ``model`` with one batch (see :meth:`MixtureOfLinearRegressions.partial_fit`)."""
    if isinstance(batch_id, str):
        key, first_row = batch_id, 0
    elif batch_id is None:
        key, first_row = None, 0
    else:
        key, first_row = str(batch_id[0]), int(batch_id[1])
    where = "batch" if batch_id is None else f"batch {batch_id!r}"
    state = getattr(model, "online_", None)
    if state is not None and features is None and (y is None or is_frame(X)):
        features = base.fitted_feature_names(model)  # a table's columns by name
    named = features is not None or is_frame(X)
    design = getattr(model, "formula_", None)
    if design is not None and is_frame(X) and features in (None,
                                                          base.fitted_feature_names(model)):
        # continuing a formula fit: a table batch is encoded with the fit's levels
        Xa, ya, wa, names = formulas.batch_arrays(design, X, y, sample_weight, weight, where)
    else:
        Xa, ya, wa, names = unchecked_batch_arrays(X, y, sample_weight, target=target,
                                                   features=features, weight=weight,
                                                   where=where)

    def check() -> None:
        check_batch_values(Xa, ya, wa, names, target=target, where=where)

    Za = None
    if concomitant is not None:
        Za, z_names = online_gate.batch_concomitant(concomitant, Xa.shape[0], where)

    # The full scan for NaN / inf (and its precise message) runs only when needed:
    # the E-step statistics of a batch with a bad value on a row of positive
    # weight are not finite, and update() then calls check() before anything is
    # committed.  Rows of zero weight could hide a bad value, and negative weights
    # would not show: any weight <= 0 (or NaN) means the scan runs first.
    if state is None or (wa is not None and wa.size and not wa.min() > 0):
        check()
    if state is None:
        base.check_hyperparameters(model)
        refuse_online(model, Za is not None)
        settings = OnlineSettings(model.step_alpha, model.step_offset, model.forget,
                                  model.average)
        rng = np.random.default_rng(model.random_state)
        if hasattr(model, "params_") and model.n_features_in_ == Xa.shape[1]:
            floor = variance_floor(design_matrix(Xa, model.fit_intercept), ya,
                                   model.variance_floor)
            state = OnlineEM.from_params(model.params_, base.mstep_options(model, floor),
                                         settings, model.fit_intercept, rng)
        else:
            state = OnlineEM.start(
                Xa, ya, wa, model.n_components, fit_intercept=model.fit_intercept,
                options=base.mstep_options(model, 0.0), settings=settings,
                init=base.start_params(model, Xa.shape[1]),
                variance_floor_factor=model.variance_floor,
                sample_size=model.init_sample_size, rng=rng, where=where)
            model.__dict__.pop("feature_names_in_", None)
            if named:
                model.feature_names_in_ = np.asarray(list(names), dtype=object)
        if Za is not None:
            state = online_gate.gated_state(model, state, Za, z_names)
        for name in (*online_gate.GATE_FITTED, "concomitant_formula_"):
            model.__dict__.pop(name, None)  # an earlier fit's gate; a gated state derives its own
        model.online_ = state
        model.n_features_in_ = Xa.shape[1]
    elif Xa.shape[1] != model.n_features_in_:
        check()  # bad values are reported first, as batch fitting does
        raise DataError(f"{where}: has {Xa.shape[1]} features; the stream started with "
                        f"{model.n_features_in_}")
    online_gate.check_stream_gate(state, Za, where)
    if Za is not None:
        record = state.update_gated(Xa, ya, wa, Za, key=key, first_row=first_row, check=check)
    else:
        record = state.update(Xa, ya, wa, key=key, first_row=first_row, check=check)
    if record is not None:
        online_updated(model)


def online_updated(model) -> None:
    """Mark the fitted attributes as out of date after an online update (see the module)."""
    d = model.__dict__
    if not d.get(base.ONLINE_STALE):
        for name in (*ONLINE_FITTED, *online_gate.GATE_FITTED, *base.INFERENCE, "n_passes_"):
            d.pop(name, None)  # the inference and n_passes_ described another fit
        d[base.ONLINE_STALE] = True


def set_online_fitted(model) -> None:
    """Derive every fitted attribute from the online state ``model.online_``."""
    d = model.__dict__
    for name in (*base.INFERENCE, "n_passes_"):
        d.pop(name, None)  # they described another fit
    d[base.ONLINE_STALE] = False
    state = model.online_
    estimate = state.estimate()
    order = np.lexsort((estimate.beta[:, 0], -estimate.weights))  # base.canonical_order's
    model.params_ = estimate.permute(order)
    online_gate.set_gate_fitted(model, state, order)
    model.n_rows_ = int(state.n_rows)
    model.sum_weights_ = float(state.sum_w)
    model.loglik_ = model.objective_ = state.prequential_loglik
    model.class_loglik_ = float(state.totals["class_loglik"])
    model.entropy_ = float(state.totals["entropy"])
    model.variance_floor_ = float(state.options.variance_floor)
    model.n_iter_ = int(state.n_msteps)
    model.converged_ = False
    model.history_ = list(state.history)
    base.set_public_arrays(model)


def drop_online_state(model) -> None:
    """Before a batch fit: keep the online estimate's fitted attributes, drop ``online_``."""
    if model.__dict__.get(base.ONLINE_STALE):
        set_online_fitted(model)  # what a failed fit leaves is the online estimate
    model.__dict__.pop("online_", None)


def polish(model, X, y=None, sample_weight=None, *, n_passes: int = 2,
           ) -> None:
    """Refine ``model``'s online fit by batch EM passes (see its :meth:`polish`)."""
    state = getattr(model, "online_", None)
    if state is None:
        raise NotFittedError("polish refines an online fit; call partial_fit first")
    if isinstance(state, OnlineGatedEM):
        raise ValueError("polish is not available with concomitant variables yet; fit "
                         "with concomitant=Z for a batch fit")
    if int(n_passes) < 1:
        raise ValueError(f"n_passes must be >= 1, got {n_passes!r}")
    source = base.source_like_fit(model, X, y, sample_weight)
    engine = resolve_engine(model.engine, source)

    def pass_fn(params: MixtureParams) -> SuffStats:
        return base.estep_pass(model, engine, source, params)

    settings = base.em_settings(model, state.options, int(n_passes))
    result = run_em(pass_fn, state.estimate(), settings, warn=False)
    totals = Profile(result.stats.n_rows, 0, result.stats.sum_w, 0, None, None, None)
    names = model.__dict__.get("feature_names_in_")
    base.set_fitted(model, result, source, totals)
    model.__dict__.pop("feature_names_in_", None)
    if names is not None:
        model.feature_names_in_ = names
    model.n_passes_ = len(result.history)  # the passes polish made
