"""Diagnostic plots (optional extra: ``pip install streammix[plot]``).

* :func:`plot_loglik`: the log-likelihood of every EM pass, with component
  removals and re-seeds marked;
* :func:`plot_fit`: a sample of the data against one feature, coloured by
  the most likely component, with each component's fitted line (the other
  features held at their sample means);
* :func:`plot_bic`: BIC (or another criterion) against the number of
  components.

The functions draw on a given matplotlib ``Axes`` or on a new
:class:`matplotlib.figure.Figure` (no pyplot, so no global state and no
display is needed) and return the figure.  :func:`sample_source` draws the
plotting sample from a source of any size with the pass-0 reservoir sampler.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from streammix.algorithms.start.profile import Profile, ProfileTask
from streammix.atomic import atomic_open
from streammix.core.checks import check_fitted, feature_names_of
from streammix.core.stats import design_matrix, log_responsibilities
from streammix.engines.inprocess import InProcessEngine

__all__ = ["plot_loglik", "plot_fit", "plot_bic", "sample_source", "save_figure"]

logger = logging.getLogger(__name__)


def _figure(ax, size=(6.4, 4.4)):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'streammix[plot]'") from exc
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def plot_loglik(model, ax=None):
    """Log-likelihood per EM pass of a fitted model (``model.history_``).

    Without ``ax`` the figure has a second panel below: the distance to the
    final log-likelihood on a log scale, where EM's linear convergence shows
    as a straight line.  An online fit (:meth:`partial_fit`, a ``streammix
    stream`` checkpoint) records batches, not passes: its figure is the
    prequential log-likelihood per row of each kept batch.

    Parameters
    ----------
    model : MixtureOfLinearRegressions
        A fitted model.
    ax : matplotlib Axes, optional
        Draw only the log-likelihood panel, here.

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_fitted(model)
    if any("iteration" not in h for h in model.history_):
        return _plot_online_trace(model, ax)
    it = np.array([h["iteration"] for h in model.history_])
    ll = np.array([h["loglik"] for h in model.history_])
    if ax is None:
        fig, _ = _figure(None, size=(6.4, 6.0))
        fig.clear()
        ax, gap_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    else:
        fig, gap_ax = ax.figure, None
    ax.plot(it, ll, marker="o", markersize=3, linewidth=1.2, color="C0")
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    for h in model.history_:
        if "event" in h:
            for a in (ax, gap_ax):
                if a is not None:
                    a.axvline(h["iteration"], color="C3", linestyle="--", linewidth=1)
            ax.annotate(h["event"], (h["iteration"], ll.min()), color="C3", rotation=90,
                        xytext=(3, 3), textcoords="offset points", va="bottom", fontsize=8)
    ax.set_ylabel("log-likelihood")
    state = "converged" if model.converged_ else "not converged"
    ax.set_title(f"EM trace: {model.n_components_} components, {model.n_iter_} iterations "
                 f"({state})\nfinal log-likelihood {model.loglik_:.10g}", fontsize=10)
    ax.grid(True, alpha=0.3)
    if gap_ax is None:
        ax.set_xlabel("EM iteration (pass)")
        return fig
    gap = ll[-1] - ll[:-1]
    ok = gap > 0
    gap_ax.semilogy(it[:-1][ok], gap[ok], marker="o", markersize=3, linewidth=1.2, color="C1")
    gap_ax.set_xlabel("EM iteration (pass)")
    gap_ax.set_ylabel("final − current\nlog-likelihood")
    gap_ax.grid(True, which="both", alpha=0.3)
    return fig


def _plot_online_trace(model, ax):
    """The prequential log-likelihood per unit weight of each batch of an online fit
    (its ``history_`` records batches, not EM iterations)."""
    records = [h for h in model.history_ if "batch" in h and "loglik_per_w" in h]
    if ax is None:
        fig, ax = _figure(None, size=(6.4, 4.0))
    else:
        fig = ax.figure
    batch = np.array([h["batch"] for h in records], dtype=float)
    per_w = np.array([h["loglik_per_w"] for h in records], dtype=float)
    ax.plot(batch, per_w, marker="o", markersize=3, linewidth=1.2, color="C0")
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_xlabel("batch")
    ax.set_ylabel("prequential log-likelihood\nper row")
    ax.set_title(f"online EM trace: {model.n_components_} components, {model.n_iter_} "
                 f"M-steps, last {len(records)} batches", fontsize=10)
    ax.grid(True, alpha=0.3)
    return fig


def _feature_index(model, feature) -> int:
    names = feature_names_of(model)
    if isinstance(feature, (int, np.integer)) and not isinstance(feature, bool):
        if not 0 <= feature < len(names):
            raise ValueError(f"feature index {feature} out of range: the model has "
                             f"{len(names)} features")
        return int(feature)
    if feature not in names:
        raise ValueError(f"unknown feature {feature!r}; the model's features are {names}")
    return names.index(feature)


def plot_fit(model, X, y, feature=0, *, ax=None, max_points: int = 5000, random_state=0,
             others: str = "mean"):
    """Data coloured by most likely component, with the fitted lines.

    Parameters
    ----------
    model : MixtureOfLinearRegressions
        A fitted model.
    X : array-like of shape (n, d)
        Features of the rows to show (a sample of a large source: see
        :func:`sample_source`).
    y : array-like of shape (n,)
    feature : int or str, default=0
        The feature on the horizontal axis.
    ax : matplotlib Axes, optional
    max_points : int, default=5000
        At most this many rows are drawn (a uniform subsample).
    random_state : int, default=0
        Seed of the subsample.
    others : {"mean", "data"}, default="mean"
        ``"mean"``: each line is the component mean along the chosen feature
        with every other feature at its mean over the rows shown.
        ``"data"``: the component means at the rows shown, joined in the
        order of the chosen feature; right when the other features are
        functions of it (x², splines), e.g. NPreg's ``x`` and ``x^2``.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    With ``others="mean"`` and more than one feature, points scatter around
    the lines also because of the other features.
    """
    if others not in ("mean", "data"):
        raise ValueError(f"others must be 'mean' or 'data', got {others!r}")
    check_fitted(model)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.shape[1] != model.n_features_in_ or X.shape[0] != y.shape[0]:
        raise ValueError(f"X has shape {X.shape} and y {y.shape}; the model needs "
                         f"{model.n_features_in_} features and one y per row")
    if X.shape[0] == 0:
        raise ValueError("no rows to plot")
    k = _feature_index(model, feature)
    if X.shape[0] > max_points:
        keep = np.sort(np.random.default_rng(random_state).choice(X.shape[0], max_points,
                                                                  replace=False))
        X, y = X[keep], y[keep]
    params = model.params_
    _, log_resp, _ = log_responsibilities(design_matrix(X, model.fit_intercept), y, params)
    label = np.argmax(log_resp, axis=1)
    fig, ax = _figure(ax)
    names = feature_names_of(model)
    if others == "mean":
        grid = np.linspace(X[:, k].min(), X[:, k].max(), 200)
        Xg = np.tile(X.mean(axis=0), (grid.size, 1))
        Xg[:, k] = grid
    else:
        Xg = X[np.argsort(X[:, k], kind="stable")]
        grid = Xg[:, k]
    means = design_matrix(Xg, model.fit_intercept) @ params.beta.T
    for j in range(params.n_components):
        colour = f"C{j % 10}"
        sel = label == j
        ax.scatter(X[sel, k], y[sel], s=6, alpha=0.35, color=colour, linewidths=0,
                   label=f"rows most likely from component {j + 1} ({int(sel.sum())})")
        ax.plot(grid, means[:, j], color=colour, linewidth=2.2,
                label=f"component {j + 1}: weight {params.weights[j]:.3f}, "
                      f"sigma {np.sqrt(params.sigma2[j]):.3g}")
    ax.set_xlabel(names[k])
    ax.set_ylabel("y (target)")
    note = ""
    if len(names) > 1:
        note = ("; other features at their means" if others == "mean"
                else "; lines: fitted means at the rows shown")
    ax.set_title(f"{params.n_components}-component fit against {names[k]}{note}\n"
                 f"{X.shape[0]} rows shown, coloured by most likely component", fontsize=10)
    ax.legend(fontsize=7, loc="best", framealpha=0.8)
    ax.grid(True, alpha=0.3)
    return fig


def plot_bic(table, *, criterion: str = "BIC", ax=None):
    """A criterion (default BIC, lower is better) against the number of components.

    Parameters
    ----------
    table : mapping k -> value, sequence of (k, value) pairs, or DataFrame
        A DataFrame needs columns ``k`` and ``bic`` (or ``criterion.lower()``).
    criterion : str, default="BIC"
        Name of the criterion (axis label, and DataFrame column in lower case).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    columns = getattr(table, "columns", None)
    if columns is not None:
        col = criterion.lower()
        if "k" not in columns or col not in columns:
            raise ValueError(f"the table needs columns 'k' and {col!r}, has {list(columns)}")
        pairs = list(zip(table["k"], table[col], strict=True))
    elif isinstance(table, Mapping):
        pairs = list(table.items())
    else:
        pairs = [tuple(row) for row in table]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError("the table needs at least one (k, value) pair")
    pairs.sort()
    ks = np.array([int(p[0]) for p in pairs])
    vals = np.array([float(p[1]) for p in pairs])
    fig, ax = _figure(ax)
    ax.plot(ks, vals, marker="o", color="C0")
    best = int(np.argmin(vals))
    ax.scatter([ks[best]], [vals[best]], s=120, facecolors="none", edgecolors="C3",
               linewidths=2, zorder=3, label=f"minimum at k = {ks[best]}")
    ax.set_xticks(ks)
    ax.set_xlabel("number of components k")
    ax.set_ylabel(f"{criterion} (lower is better)")
    ax.set_title(f"{criterion} against the number of components")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return fig


def sample_source(source, size: int = 5000, seed: int = 0, engine=None):
    """A weighted random sample of up to ``size`` rows of a source, in one pass.

    Uses the chunk-invariant reservoir sampler of pass 0
    (:class:`streammix.algorithms.start.profile.ProfileTask`), so the sample does not depend on
    how the source is chunked.  Returns ``(X, y)``.
    """
    engine = engine if engine is not None else InProcessEngine()
    profile = engine.map_reduce(source, ProfileTask(int(seed), int(size)),
                                Profile.empty(source.n_features, int(size)))
    return profile.X, profile.y


def save_figure(fig, path, dpi: int = 120) -> None:
    """Write a figure atomically (format from the file suffix)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=dpi)
    logger.info("wrote %s", path)

