"""The summary table of a fitted mixture: estimates, standard errors, tests.

:class:`Summary` is what ``model.summary()`` returns and what ``streammix
info`` prints: per component the coefficients with standard error, Wald z,
two-sided p-value and confidence interval, the weight and σ with theirs, and
the fit statistics (log-likelihood, n, AIC, BIC, ICL, iterations,
convergence).  ``to_frame()`` gives the same numbers as a pandas DataFrame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from streammix.core.checks import feature_names_of
from streammix.core.constrained_mstep import resolve_shared

__all__ = ["Summary", "SummaryRow", "coefficient_names"]

_METHOD_TEXT = {
    "louis": "observed information (Louis)",
    "opg": "outer product of scores (OPG)",
    "sandwich": "sandwich (robust)",
}
_NA = "n/a"



def coefficient_names(model) -> list[str]:
    """Names of a fitted model's coefficients: ``(intercept)`` (when fitted), then the features."""
    names = feature_names_of(model)
    return (["(intercept)"] if model.fit_intercept else []) + names

@dataclass(frozen=True)
class SummaryRow:
    """One estimate: component (1-based), term, estimate, SE, z, p, CI."""

    component: int
    term: str
    estimate: float
    std_err: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float


def _wald(component, term, estimate, se, crit) -> SummaryRow:
    if not (se > 0 and math.isfinite(se)):
        nan = float("nan")
        return SummaryRow(component, term, float(estimate), nan, nan, nan, nan, nan)
    z = estimate / se
    p = math.erfc(abs(z) / math.sqrt(2.0))
    return SummaryRow(component, term, float(estimate), float(se), float(z), float(p),
                      float(estimate - crit * se), float(estimate + crit * se))


def _transformed(component, term, estimate, se_work, crit, to_work, from_work) -> SummaryRow:
    """Interval computed on a working scale (log σ, logit π) and mapped back; no test."""
    nan = float("nan")
    if not (se_work > 0 and math.isfinite(se_work)):
        return SummaryRow(component, term, float(estimate), nan, nan, nan, nan, nan)
    centre = to_work(estimate)
    return SummaryRow(component, term, float(estimate), nan, nan, nan,
                      float(from_work(centre - crit * se_work)),
                      float(from_work(centre + crit * se_work)))


@dataclass(frozen=True)
class Summary:
    """Estimates and inference of a fitted :class:`MixtureOfLinearRegressions`.

    Attributes
    ----------
    coefficients : list of SummaryRow
        One row per component and coefficient (intercept first).
    weights, sigmas : list of SummaryRow
        One row per component.  Their standard errors come from the delta
        method (σ_j · SE(log σ_j); the softmax Jacobian for π_j); their
        intervals are computed on the log scale (σ) and the logit scale (π)
        and mapped back, so they stay positive and inside (0, 1).  No z or
        p-value is given for them.
    stats : dict
        Fit statistics: loglik, n (sum of weights), n_rows, n_parameters,
        aic, bic, icl, n_iter, converged.
    header : dict
        Model description: n_components, noise, se_method (None when no
        standard errors were computed), alpha.
    shared : list of SummaryRow
        The coefficients all components share (the option ``fixed``), once
        each, with component 0; they are not repeated in ``coefficients``.
    gate : list of SummaryRow
        With concomitant variables: the gate coefficients of components
        2..m (terms ``gate:(intercept)``, ``gate:z1``, ...; component 1 is
        the baseline).
    """

    coefficients: list[SummaryRow]
    weights: list[SummaryRow]
    sigmas: list[SummaryRow]
    stats: dict
    header: dict = field(default_factory=dict)
    shared: list[SummaryRow] = field(default_factory=list)
    gate: list[SummaryRow] = field(default_factory=list)

    @classmethod
    def from_model(cls, model, alpha: float = 0.05) -> Summary:
        """Build the summary of a fitted model (SEs from ``model.bse_`` if present)."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        crit = NormalDist().inv_cdf(1.0 - alpha / 2.0)
        m = model.n_components_
        names = coefficient_names(model)
        beta = model.params_.beta
        bse = getattr(model, "bse_", None)
        nan = np.full(m, np.nan)
        se_coef = bse["coef"] if bse is not None else np.full(beta.shape, np.nan)
        common = resolve_shared(getattr(model, "fixed", None), names[int(model.fit_intercept):],
                                model.fit_intercept)
        coefficients = [_wald(j + 1, names[k], beta[j, k], se_coef[j, k], crit)
                        for j in range(m) for k in range(len(names)) if k not in common]
        shared = [_wald(0, names[k], beta[0, k], se_coef[0, k], crit) for k in common]
        se_pi = bse["weight"] if bse is not None else nan
        se_logsig = bse["log_sigma"] if bse is not None else nan
        weights, sigmas = [], []
        for j in range(m):
            pi = float(model.weights_[j])
            sigma = float(model.sigma_[j])
            row = _transformed(j + 1, "weight", pi, se_pi[j] / (pi * (1.0 - pi))
                               if 0 < pi < 1 else np.nan, crit,
                               lambda v: math.log(v / (1.0 - v)),
                               lambda v: 1.0 / (1.0 + math.exp(-v)))
            weights.append(_with_se(row, se_pi[j]))
            row = _transformed(j + 1, "sigma", sigma, se_logsig[j], crit, math.log, math.exp)
            sigmas.append(_with_se(row, sigma * se_logsig[j]))
        crit_stats = model.information_criteria()
        stats = {
            "loglik": crit_stats["loglik"], "n": crit_stats["n"], "n_rows": model.n_rows_,
            "n_parameters": crit_stats["n_parameters"], "aic": crit_stats["aic"],
            "bic": crit_stats["bic"], "icl": crit_stats["icl"], "n_iter": model.n_iter_,
            "converged": bool(model.converged_),
        }
        header = {"n_components": m, "noise": model.noise,
                  "se_method": getattr(model, "se_method_", None) if bse is not None else None,
                  "alpha": alpha}
        gate = []
        coef = getattr(model, "concomitant_coef_", None)
        if coef is not None:
            se_gate = bse.get("concomitant") if bse is not None else None
            se_gate = np.full(coef.shape, np.nan) if se_gate is None else se_gate
            terms = ["(intercept)", *model.concomitant_names_]
            gate = [_wald(j + 1, f"gate:{terms[c]}", coef[j, c], se_gate[j, c], crit)
                    for j in range(1, coef.shape[0]) for c in range(coef.shape[1])]
        return cls(coefficients, weights, sigmas, stats, header, shared, gate)

    # ------------------------------------------------------------------ output
    def to_frame(self):
        """A pandas DataFrame indexed by (component, term).

        Columns: estimate, std_err, z, p_value, ci_low, ci_high.  The terms
        are the coefficients, then ``weight`` and ``sigma`` per component.
        Needs pandas (an optional dependency).
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("Summary.to_frame() needs pandas: pip install pandas") from exc
        rows = list(self.shared)
        m = self.header["n_components"]
        for j in range(1, m + 1):
            rows += [r for r in self.coefficients if r.component == j]
            rows += [self.weights[j - 1], self.sigmas[j - 1]]
        frame = pd.DataFrame(
            [(r.component, r.term, r.estimate, r.std_err, r.z, r.p_value, r.ci_low, r.ci_high)
             for r in rows],
            columns=["component", "term", "estimate", "std_err", "z", "p_value",
                     "ci_low", "ci_high"],
        )
        return frame.set_index(["component", "term"])

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN for missing values is replaced by None)."""
        def clean(value):
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        def row(r: SummaryRow) -> dict:
            return {k: clean(v) for k, v in r.__dict__.items()}

        return {"header": dict(self.header), "stats": dict(self.stats),
                "coefficients": [row(r) for r in self.coefficients],
                "shared": [row(r) for r in self.shared],
                "gate": [row(r) for r in self.gate],
                "weights": [row(r) for r in self.weights],
                "sigmas": [row(r) for r in self.sigmas]}

    def as_text(self) -> str:
        """The summary as a fixed-width text table."""
        h, s = self.header, self.stats
        level = f"{1 - h['alpha']:.0%}"
        lo, hi = f"{h['alpha'] / 2:.3g}", f"{1 - h['alpha'] / 2:.3g}"
        lines = [
            f"Mixture of {h['n_components']} linear regressions ({h['noise']} noise)",
            f"rows {s['n_rows']}   n (sum of weights) {_count(s['n'])}   "
            f"iterations {s['n_iter']}   converged {'yes' if s['converged'] else 'NO'}",
            f"log-likelihood {s['loglik']:.4f}   parameters {s['n_parameters']}",
            f"AIC {s['aic']:.3f}   BIC {s['bic']:.3f}   ICL {s['icl']:.3f}",
        ]
        if h["se_method"] is None:
            lines.append("standard errors: not computed ("
                         + h.get("se_hint", "call compute_se(X, y) or fit(..., se=True)")
                         + ")")
        else:
            lines.append(f"standard errors: {_METHOD_TEXT[h['se_method']]}; "
                         f"{level} Wald intervals")
        width = max([len(r.term) for r in self.coefficients + self.shared] + [len("weight")]
                    + [len(f"comp{r.component} {r.term}") for r in self.gate])
        head = (f"{'':<{width}} {'coef':>11} {'std err':>10} {'z':>8} {'P>|z|':>7} "
                f"{'[' + lo:>11} {hi + ']':>11}")
        if self.shared:
            lines += ["", "shared by all components:", head, "-" * len(head)]
            lines += [_coef_line(r, width) for r in self.shared]
        for j in range(1, h["n_components"] + 1):
            w, sg = self.weights[j - 1], self.sigmas[j - 1]
            sigma_se = "fixed" if h["noise"] == "fixed" else f"SE {_num(sg.std_err)}"
            lines += ["", f"component {j}: weight {_num(w.estimate)} (SE {_num(w.std_err)})   "
                          f"sigma {_num(sg.estimate)} ({sigma_se})", head]
            lines.append("-" * len(head))
            for r in (r for r in self.coefficients if r.component == j):
                lines.append(_coef_line(r, width))
            for r in (w, sg):
                lines.append(f"{r.term:<{width}} {_num(r.estimate):>11} {_num(r.std_err):>10} "
                             f"{'':>8} {'':>7} {_num(r.ci_low):>11} {_num(r.ci_high):>11}")
        if self.gate:
            lines += ["", "concomitant variables (the gate; component 1 is the baseline):",
                      head, "-" * len(head)]
            lines += [_coef_line(r, width, f"comp{r.component} {r.term}") for r in self.gate]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_text()


def _coef_line(r: SummaryRow, width: int, label: str | None = None) -> str:
    return (f"{label or r.term:<{width}} {_num(r.estimate):>11} {_num(r.std_err):>10} "
            f"{_zstat(r.z):>8} {_pval(r.p_value):>7} {_num(r.ci_low):>11} {_num(r.ci_high):>11}")


def _with_se(row: SummaryRow, se: float) -> SummaryRow:
    se = float(se)
    return SummaryRow(row.component, row.term, row.estimate,
                      se if math.isfinite(se) else float("nan"), row.z, row.p_value,
                      row.ci_low, row.ci_high)


def _num(value: float) -> str:
    """Four significant digits (as R's summaries), fixed-point where readable."""
    if not math.isfinite(value):
        return _NA
    if value == 0:
        return "0"
    mag = math.floor(math.log10(abs(value)))
    if -4 <= mag < 6:
        return f"{value:.{max(0, 3 - mag)}f}"
    return f"{value:.3e}"


def _count(value: float) -> str:
    """A count, or a weight total, as an integer when it is one."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _zstat(value: float) -> str:
    """A z statistic to three decimals."""
    return _NA if not math.isfinite(value) else f"{value:.3f}"


def _pval(value: float) -> str:
    """A p-value to three decimals, ``<0.001`` below."""
    if not math.isfinite(value):
        return _NA
    return "<0.001" if value < 0.001 else f"{value:.3f}"

