"""Plain-text reports of a fitted model."""

from __future__ import annotations

from streammix.core.checks import check_fitted, feature_names_of

__all__ = ["format_model"]


def format_model(model) -> str:
    """A readable table of a fitted :class:`MixtureOfLinearRegressions`.

    One block per component (weight, σ, intercept and coefficients by
    feature name), then the fit statistics.
    """
    check_fitted(model)
    names = feature_names_of(model)
    width = max([len(n) for n in names] + [len("(intercept)")])
    lines = [f"Mixture of {model.n_components_} linear regressions "
             f"({model.noise} noise), fitted on {model.n_rows_} rows"]
    for j in range(model.n_components_):
        lines.append("")
        lines.append(f"component {j + 1}: weight {model.weights_[j]:.6g}, "
                     f"sigma {model.sigma_[j]:.6g}")
        if model.fit_intercept:
            lines.append(f"  {'(intercept)':<{width}}  {model.intercept_[j]: .6g}")
        for name, value in zip(names, model.coef_[j], strict=False):
            lines.append(f"  {name:<{width}}  {value: .6g}")
    crit = model.information_criteria()
    lines.append("")
    lines.append(f"log-likelihood {crit['loglik']:.10g}   parameters {crit['n_parameters']}   "
                 f"AIC {crit['aic']:.8g}   BIC {crit['bic']:.8g}   ICL {crit['icl']:.8g}")
    lines.append(f"iterations {model.n_iter_}   converged {model.converged_}")
    return "\n".join(lines)

