"""Choosing the number of components: every k fitted in the same scans.

:func:`select_components` runs the EM runs of all candidate numbers of
components (and all their restarts) in lock-step, so each pass reads every
chunk once whatever the number of k values (:mod:`streammix.algorithms.restarts`),
through the functions of the fit pipeline (:mod:`streammix.estimator.fitting`).
The criteria come from the final pass of each fit (the mathematics page
(docs/mathematics.rst), §7); an optional held-out log-likelihood is computed
on a seeded random subset of chunks that the fits never saw, in one more
lock-step pass.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from streammix.algorithms.degeneracy import best_nondegenerate
from streammix.algorithms.em import warn_not_converged
from streammix.algorithms.restarts import CullRule, StatsBundle, run_lockstep
from streammix.algorithms.tasks import MultiEStepTask
from streammix.core.params import MixtureParams
from streammix.data.resolve import as_source
from streammix.estimator import fitting, formulas
from streammix.estimator.base import check_hyperparameters, draw_seed, set_fitted, start_params
from streammix.estimator.model import MixtureOfLinearRegressions

__all__ = ["select_components", "SelectionResult", "PlanSubset", "Dominance", "split_chunks",
           "CRITERIA", "format_table", "TEXT_COLUMNS"]

logger = logging.getLogger(__name__)

#: Criteria that can choose k: information criteria (lower is better) and the
#: held-out log-likelihood per unit weight (higher is better).
CRITERIA = ("bic", "aic", "icl", "icl_bic", "heldout")


class PlanSubset:
    """The chunks ``descriptors`` of ``source``: a source in its own right."""

    def __init__(self, source, descriptors):
        self.source = source
        self.descriptors = sorted(descriptors)

    @property
    def n_features(self) -> int:
        return self.source.n_features

    @property
    def feature_names(self) -> list[str]:
        return list(getattr(self.source, "feature_names", []))

    @property
    def readable_on(self) -> str:
        return getattr(self.source, "readable_on", "client")

    @property
    def feature_names_given(self) -> bool:
        return getattr(self.source, "feature_names_given", True)

    @property
    def formula_design(self):
        """The source's formula design (None without one): a model fitted on the subset
        keeps it as ``formula_``, as one fitted on the whole source does."""
        return getattr(self.source, "formula_design", None)

    def plan(self) -> list:
        return list(self.descriptors)

    def read(self, descriptor):
        return self.source.read(descriptor)


@dataclass
class SelectionResult:
    """What :func:`select_components` found.

    Attributes
    ----------
    table : list of dict
        One row per k, in increasing k: ``k`` (the number of components
        asked), ``n_components_fitted`` (fewer than k when components were
        dropped), ``collapsed`` (``n_components_fitted < k``), ``eligible``
        (not collapsed: only eligible rows are chosen, since a collapsed row
        only repeats a smaller k), ``loglik``, ``n_parameters``, ``aic``,
        ``bic``, ``icl``, ``icl_bic`` (of the fitted model), ``converged``,
        ``n_iter``, ``dominated``, and ``heldout_loglik`` (mean per unit
        weight) when a hold-out was asked.
    criterion : str
    best_k : int
    model : MixtureOfLinearRegressions
        The fitted model at ``best_k``.
    models : dict
        k -> fitted model, for every k.
    n_passes : int
        Scans of the (training) data, pass 0 included.
    """

    table: list[dict]
    criterion: str
    best_k: int
    model: object
    models: dict = field(default_factory=dict)
    n_passes: int = 0

    def to_frame(self):
        """The table as a pandas DataFrame indexed by k, the number of components
        asked (``n_components_fitted`` and ``collapsed`` say what was fitted)."""
        import pandas as pd
        return pd.DataFrame(self.table).set_index("k")

    def __str__(self) -> str:
        return format_table(self.table, self.criterion, self.best_k)


#: Columns of the text table (then ``heldout_loglik`` when present, then ``fitted``).
TEXT_COLUMNS = ("k", "loglik", "n_parameters", "aic", "bic", "icl")


def format_table(table: list[dict], criterion: str, best_k: int) -> str:
    """The selection table as text: one line per k, the chosen row marked ``*``.

    A row whose fit lost components shows its k as ``asked->fitted`` (e.g.
    ``4->3``) and is marked ``collapsed``: its numbers are those of the
    smaller fitted model, and it is never chosen.  Floats are printed with
    fixed decimals (3 for the criteria, 10 significant digits for the held-out
    mean), so rows that differ at any n print differently.
    """
    cols = list(TEXT_COLUMNS)
    if table and "heldout_loglik" in table[0]:
        cols.append("heldout_loglik")
    cols.append("fitted")
    cells = []
    for row in table:
        line = []
        for c in cols:
            if c == "k":
                k, fitted = row["k"], row["n_components_fitted"]
                line.append(f"{k}" if fitted == k else f"{k}->{fitted}")
            elif c == "fitted":
                line.append(str(row["n_components_fitted"]))
            elif c == "heldout_loglik":
                line.append(f"{row[c]:.10g}")
            elif isinstance(row[c], float):
                line.append(f"{row[c]:.3f}")
            else:
                line.append(str(row[c]))
        cells.append(line)
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))]
    for row, line in zip(table, cells, strict=True):
        text = "  ".join(f"{v:>{w}}" for v, w in zip(line, widths, strict=True))
        if row["n_components_fitted"] != row["k"]:
            text += "  collapsed"
        elif row["k"] == best_k:
            text += "  *"
        lines.append(text)
    collapsed = [row for row in table if row["n_components_fitted"] != row["k"]]
    for row in collapsed:
        lines.append(f"k = {row['k']}: the fit kept {row['n_components_fitted']} "
                     "component(s) (the others collapsed, see history_); not eligible")
    lines.append(f"chosen by {criterion}: k = {best_k}")
    return "\n".join(lines)


def select_components(X, y=None, *, k=range(1, 7), criterion: str = "bic",
                      sample_weight=None, holdout: float | None = None,
                      stop_dominated: bool = True, formula=None, groups=None,
                      **model_kwargs) -> SelectionResult:
    """Fit a mixture for every number of components in ``k`` and choose one.

    Parameters
    ----------
    X : array-like, DataFrame or source
        As for :meth:`MixtureOfLinearRegressions.fit`.
    y : array-like, optional
    k : iterable of int
        Candidate numbers of components.
    criterion : {"bic", "aic", "icl", "icl_bic", "heldout"}
        How to choose: the smallest criterion, or the largest held-out
        log-likelihood (needs ``holdout``).
    sample_weight : array-like, optional
    holdout : float, optional
        Fraction of the chunks (at least one, chosen at random with the
        model's ``random_state``) kept out of the fits and scored at the end.
    stop_dominated : bool
        With ``criterion`` "bic" or "aic", stop the runs of a k that cannot
        win against another k (see :class:`Dominance`); their rows hold the
        best point reached,
        with ``converged`` False and ``dominated`` True.  Over-fitted k
        converge slowly (the information is singular), so this saves most
        of the passes.
    formula : str, optional
        A model formula, as for :meth:`MixtureOfLinearRegressions.fit`
        (``X`` a table or a :class:`~streammix.ParquetSource`); its levels are
        learned once and every model keeps it as ``formula_``.
    groups : array-like of shape (n,), optional
        Group ids of grouped classes (as for ``fit``); a source made with
        ``groups="id"`` has them already.  Each k is then fitted on its own
        (its passes are not shared with the other k; no ``holdout``).  So is each
        k of a source with concomitant variables (each model has its gate).
    **model_kwargs
        Passed to :class:`MixtureOfLinearRegressions` (``n_init``, ``tol``,
        ``accelerate``, ``engine``, ...); not ``n_components``.

    Returns
    -------
    SelectionResult
    """
    ks = sorted({int(v) for v in k})
    if not ks or ks[0] < 1:
        raise ValueError(f"k must hold integers >= 1, got {list(k)!r}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if criterion == "heldout" and holdout is None:
        raise ValueError("criterion='heldout' needs holdout, e.g. holdout=0.2")
    if "n_components" in model_kwargs:
        raise ValueError("give the candidate numbers of components as k, not n_components")
    init = model_kwargs.get("init", "auto")
    if isinstance(init, (dict, MixtureParams)):
        raise ValueError("select_components needs a named init method; explicit starting "
                         "values fix the number of components")
    if model_kwargs.get("noise") == "fixed" and np.ndim(model_kwargs.get("sigma")) > 0:
        raise ValueError("with noise='fixed', select_components needs one scalar sigma")
    models = {m: MixtureOfLinearRegressions(m, **model_kwargs) for m in ks}
    base = models[ks[-1]]
    for model in models.values():
        check_hyperparameters(model)
    if formula is not None:
        source = formulas.formula_source(base, X, y, sample_weight, formula)
    else:
        source = as_source(X, y, sample_weight, chunk_rows=base.chunk_rows)
    if groups is not None or getattr(source, "groups", None) is not None:
        if holdout is not None or criterion == "heldout":
            raise ValueError("select_components with groups has no holdout (yet)")
        return _select_grouped(models, criterion, lambda model: model.fit(
            source, groups=groups) if groups is None else model.fit(X, y, groups=groups))
    if getattr(source, "concomitant_names", None) or getattr(source, "concomitant", None):
        if holdout is not None or criterion == "heldout":
            raise ValueError("select_components with concomitant variables has no holdout "
                             "(yet)")
        return _select_grouped(models, criterion, lambda model: model.fit(source))
    for model in models.values():
        formulas.prepare(model, source)  # the levels are learned once, by the first
    train, test = source, None
    if holdout is not None:
        train, test = split_chunks(source, holdout, base.random_state)
    ctx = fitting.profile_pass(base, train, draw_seed(base.random_state))

    runs, groups, settings_by_k = [], [], {}
    for m in ks:
        model = models[m]
        settings = settings_by_k[m] = fitting.em_settings(model, ctx, m)
        start = start_params(model, ctx.d)
        for run in range(model.n_init):
            runs.append(fitting.run_steps(model, ctx, m, start, run, settings))
            groups.append(m)
    cull = CullRule(options=settings.mstep) if base.cull_restarts else None
    dominated = None
    if criterion in ("bic", "aic") and stop_dominated:
        penalty = {m: models[m].n_parameters(m, ctx.d)
                   * (math.log(ctx.profile.sum_w) if criterion == "bic" else 2.0) for m in ks}
        dominated = Dominance(groups, penalty)
    lockstep = run_lockstep(runs, fitting.lockstep_pass(ctx, base.fit_intercept), groups=groups,
                        cull=cull, dominated=dominated)

    best, stopped, passed = {}, {}, {}
    for m in ks:  # per k, the best non-degenerate run, as fit() keeps
        ids = [i for i, g in enumerate(groups) if g == m]
        best[m], passed[m] = best_nondegenerate([lockstep.results[i] for i in ids],
                                                settings_by_k[m].choice_rule, m)
        if passed[m] is not None:
            passed[m] = {**passed[m], "run": passed[m]["run"]}
            fitting.warn_passed_over(passed[m], best[m], stacklevel=2)
        stopped[m] = any(lockstep.results[i] is best[m] for i in ids
                         if i in lockstep.stopped)
    table = []
    for m in ks:
        if not stopped[m]:
            warn_not_converged(best[m], stacklevel=2)
        model = models[m]
        result = best[m]
        if result.settings is None:  # stopped as dominated: the run's settings
            result = dataclasses.replace(result, settings=settings_by_k[m])
        if ctx.scaling is not None:
            result = ctx.scaling.unscale(result)
        set_fitted(model, result, ctx.source, ctx.profile)
        model.passed_over_ = passed[m]
        model.n_passes_ = lockstep.n_passes + 1
        table.append(_row(model, m, stopped[m]))
    n_passes = lockstep.n_passes + 1
    if test is not None:
        params = tuple(models[m].params_ for m in ks)
        stats = ctx.engine.map_reduce(test, MultiEStepTask(params, base.fit_intercept),
                                      StatsBundle.zeros(params))
        for row, st in zip(table, stats, strict=True):
            row["heldout_loglik"] = st.loglik / st.sum_w if st.sum_w > 0 else math.nan
    # A fit that lost components is not a k-component fit: it only repeats a
    # smaller k, so it is not eligible (and the table marks it).
    eligible = [row for row in table if row["eligible"]] or table
    if criterion == "heldout":
        chosen = max(eligible, key=lambda row: row["heldout_loglik"])
    else:  # ties go to the smaller k
        chosen = min(eligible, key=lambda row: row[criterion])
    logger.info("select_components: %s chose k=%d after %d passes", criterion, chosen["k"],
                n_passes)
    return SelectionResult(table, criterion, chosen["k"], models[chosen["k"]], models,
                           n_passes)


def _row(model, m: int, dominated: bool) -> dict:
    """The table row of the fitted ``model`` for k = ``m``."""
    crit = model.information_criteria()
    fitted = int(model.n_components_)
    return {"k": m, "n_components_fitted": fitted, "collapsed": fitted < m,
            "eligible": fitted == m, "loglik": crit["loglik"],
            "n_parameters": crit["n_parameters"], "aic": crit["aic"], "bic": crit["bic"],
            "icl": crit["icl"], "icl_bic": crit["icl_bic"], "converged": model.converged_,
            "n_iter": model.n_iter_, "dominated": dominated}


def _select_grouped(models: dict, criterion: str, fit) -> SelectionResult:
    """Grouped classes or concomitant variables: each k fitted on its own by ``fit(model)``
    (the gate's or the groups' fit, not the shared scan), then chosen alike."""
    table = []
    for m, model in models.items():
        fit(model)
        table.append(_row(model, m, False))
    eligible = [row for row in table if row["eligible"]] or table
    chosen = min(eligible, key=lambda row: row[criterion])  # ties go to the smaller k
    n_passes = sum(model.n_passes_ for model in models.values())
    logger.info("select_components (grouped): %s chose k=%d after %d passes", criterion,
                chosen["k"], n_passes)
    return SelectionResult(table, criterion, chosen["k"], models[chosen["k"]], models,
                           n_passes)


class Dominance:
    """Stop a k whose criterion cannot catch up with another k's.

    With ℓ_t the log-likelihood of a run's t-th pass, its reach over the
    next ``horizon`` passes is taken as R = max(``margin``, (horizon /
    lookback) (ℓ_t − ℓ_{t−lookback})): its recent progress continued
    linearly, which over-estimates EM's slowing ascent.  The run is stopped
    when −2(ℓ_best + R) + penalty(k) is still above −2ℓ'_best + penalty(k')
    for some run of another k'.  EM only raises ℓ', so the other k's final
    criterion can only be lower than that, and the smaller-is-better
    ranking cannot change unless the stopped run gains more than R.
    """

    def __init__(self, groups, penalty, lookback: int = 5, horizon: int = 200,
                 margin: float = 2.0):
        self.groups, self.penalty = list(groups), penalty
        self.lookback, self.horizon, self.margin = lookback, horizon, margin

    def __call__(self, i: int, lls: list[float], best) -> bool:
        if len(lls) <= self.lookback:
            return False
        g = self.groups[i]
        others = [-2.0 * best[j] + self.penalty[self.groups[j]]
                  for j in range(len(best)) if self.groups[j] != g and np.isfinite(best[j])]
        if not others:
            return False
        recent = max(lls[-1] - lls[-1 - self.lookback], 0.0)
        reach = max(self.margin, self.horizon / self.lookback * recent)
        here = -2.0 * (max(lls) + reach) + self.penalty[g]
        return here > min(others)


def split_chunks(source, fraction: float, random_state):
    """``(train, test)``: a seeded random ``fraction`` of the chunks of ``source`` held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1), got {fraction!r}")
    plan = source.plan()
    if len(plan) < 2:
        raise ValueError(f"a hold-out needs at least 2 chunks, the data has {len(plan)}; "
                         "use a smaller chunk_rows")
    rng = np.random.default_rng(random_state if isinstance(random_state, int) else None)
    n_test = min(len(plan) - 1, max(1, round(fraction * len(plan))))
    picked = set(rng.choice(len(plan), size=n_test, replace=False).tolist())
    test = [d for i, d in enumerate(plan) if i in picked]
    train = [d for i, d in enumerate(plan) if i not in picked]
    return PlanSubset(source, train), PlanSubset(source, test)
