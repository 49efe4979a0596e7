"""The start pool's sizes: how many starts, survivors and finalists, and how many
iterations each stage runs, from a budget of work in row × component ×
iteration units (:mod:`streammix.algorithms.start.pool`).

On a few dozen rows a pass costs microseconds and the stages take as many
runs and iterations as the budget allows; on larger samples they shrink to
their floors, and beyond a few thousand rows the pool is not used at all
(:func:`pool_size` is 0), so the large-data path keeps its cost in passes.
"""

from __future__ import annotations

__all__ = ["POOL_BUDGET", "MIN_POOL", "MAX_POOL", "SHORT_ITER", "LONG_ITER",
           "SURVIVOR_SHARE", "GAIN_SHARE", "N_FINALISTS", "MAX_FINALISTS", "EXCHANGE_ROUNDS",
           "N_FULL", "N_FORMING", "MAX_FULL", "pool_size", "short_iterations",
           "survivor_count", "finalist_count", "long_iterations", "exchange_moves"]

#: Work budget of the short runs, in row × component × iteration units (about
#: 40 ms with numpy on one core).
POOL_BUDGET = 2_500_000

#: Below this many starts the pool is not used (large data).
MIN_POOL = 32

#: At most this many starts.
MAX_POOL = 400

#: Iterations of the first short runs; the best quarter runs 3 × as many more.
SHORT_ITER = 5

#: Iterations of the stacked runs of the best distinct survivors.
LONG_ITER = 60

#: Distinct survivors run to convergence by the full EM: that pass the
#: degeneracy test, and that pass only its lenient form.
N_FULL = 2
N_FORMING = 1

#: At most this many distinct identified finalists are run to convergence, down
#: the list until :data:`N_FULL` end non-degenerate.
MAX_FULL = 6

#: Rounds of the exchange step (one row moved between components, from the best
#: finalists); a round that finds nothing better ends them.
EXCHANGE_ROUNDS = 3

#: The best quarter of the first short runs continues.
SURVIVOR_SHARE = 4

#: Beside the survivors by log-likelihood, one in this many more continue: the
#: runs that climbed fastest in the last short iteration.
GAIN_SHARE = 8

#: Distinct survivors of each kind (identified, forming) that run LONG_ITER more.
N_FINALISTS = 2 * N_FULL

#: At most this many of each kind on small data (:func:`finalist_count`).
MAX_FINALISTS = 64

def pool_size(n_rows: int, n_components: int, cross_noise: bool) -> int:
    """Number of starts the budget allows on ``n_rows`` sample rows (0: no pool).

    A start costs about ``SHORT_ITER × 2`` iterations of ``n_rows ×
    n_components`` (the first short run, and a quarter of the starts running
    three times as long), doubled when the other noise model is tried too.
    """
    per_start = 2 * SHORT_ITER * n_rows * n_components * (2 if cross_noise else 1)
    size = min(MAX_POOL, POOL_BUDGET // max(per_start, 1))
    return int(size) if size >= MIN_POOL else 0


def finalist_count(n_rows: int, n_components: int) -> int:
    """Distinct survivors of each kind that run :data:`LONG_ITER` more iterations:
    :data:`N_FINALISTS`, or as many as half the budget allows, up to
    :data:`MAX_FINALISTS` -- on small data the best runs after some forty
    iterations are often bound for spikes, and the identified optimum is among
    the next ones."""
    size = POOL_BUDGET // (2 * LONG_ITER * max(n_rows * n_components, 1))
    return int(min(MAX_FINALISTS, max(N_FINALISTS, size)))


def survivor_count(n_rows: int, n_components: int, cross_noise: bool, size: int,
                   short: int) -> int:
    """Runs of each noise model that continue after the first short runs: a
    quarter of ``size`` (:data:`SURVIVOR_SHARE`), or as many as the budget allows
    for their ``3 short`` more iterations, up to half -- on a few dozen rows the
    runs bound for the identified optimum can rank behind many bound for spikes
    after ``short`` iterations."""
    per_run = 3 * short * n_rows * n_components * (3 if cross_noise else 1)
    share = min(size // 2, POOL_BUDGET // max(per_run, 1))
    return int(max(N_FULL, size // SURVIVOR_SHARE, share))


def long_iterations(n_rows: int, n_components: int, n_runs: int) -> int:
    """Iterations of the ``n_runs`` finalists: :data:`LONG_ITER`, or up to four times
    as many within twice the budget -- on a few dozen rows a run bound for a
    spike can still look identified after sixty iterations and outrank the run
    bound for the identified optimum (MASS::mammals)."""
    per_iter = LONG_ITER * max(n_rows * n_components * n_runs, 1)
    return int(LONG_ITER * min(4, max(1, 2 * POOL_BUDGET // per_iter)))


def short_iterations(n_rows: int, n_components: int, cross_noise: bool, size: int) -> int:
    """Iterations of the first short runs: :data:`SHORT_ITER`, or up to twice as
    many when ``size`` starts (capped at :data:`MAX_POOL`) leave the budget unspent
    -- on a few dozen rows, runs still on their way to a sensible optimum are told
    from those bound for a spike only after some ten iterations."""
    per_iter = 2 * size * n_rows * n_components * (2 if cross_noise else 1)
    return int(min(2 * SHORT_ITER, max(SHORT_ITER, POOL_BUDGET // max(per_iter, 1))))


def exchange_moves(n_rows: int, n_components: int, size: int, n_iter: int) -> int:
    """Row moves of each exchange round (:mod:`~streammix.algorithms.start.moves`):
    ``size``, or fewer so that :data:`EXCHANGE_ROUNDS` rounds of ``n_iter``
    iterations stay within the budget."""
    return int(min(size, POOL_BUDGET // max(EXCHANGE_ROUNDS * n_iter * n_rows * n_components,
                                            1)))
