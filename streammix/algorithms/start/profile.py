"""Pass 0: row counts, a weighted reservoir sample and the moments of (x, y).

The sample is chunk-invariant: every row's random key is a hash of the seed,
the row's origin (file or array) and its index there, so the same rows are
drawn however the data is chunked.

When the number of rows is known before the pass (:func:`key_floor`), chunks
of unit weights keep only the rows whose key is above a floor that about
1.5 times the sample size of keys exceed: the chunks then copy, and the
merges select among, a few rows instead of every row.  The sample is the
same as without the floor whenever at least ``size`` kept keys are above it
(:meth:`Profile.exact`); else the pass is taken again without the floor.

A pass of ``ProfileTask(..., lazy=True)`` does not copy the sample rows as it
goes: a chunk's profile refers to the rows it keeps (one plain copy of a
chunk kept whole), merges select among keys and row positions only, and
:meth:`Profile.settled` gathers the winners once, after the pass (the same
arrays, bit for bit, as the eager pass's).  In-memory arrays need not be
passed over chunk by chunk at all: :func:`profile_arrays` takes each
chunk's keys, counts and sums as the pass does and gathers the sample from
the arrays by index (the same profile, bit for bit).

Without ``moments`` the pass forms no moments: only standardisation and the
spectral start read them.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass

import numpy as np

from streammix.core.chunk import Chunk
from streammix.core.moments import Moments
from streammix.core.reduce import tree_sum

__all__ = ["Profile", "ProfileTask", "row_uniforms", "top_keys", "key_floor", "profile_arrays"]

#: A lazy profile gathers its rows into one compact block when the blocks it
#: refers to hold more than this many times ``size`` rows (bounds its memory).
LAZY_ROWS_FACTOR = 4


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _splitmix64_inplace(x: np.ndarray) -> np.ndarray:
    """:func:`_splitmix64` of a uint64 array, written over it (one scratch array)."""
    t = np.empty_like(x)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            np.right_shift(x, np.uint64(shift), out=t)
            x ^= t
            x *= np.uint64(mult)
        np.right_shift(x, np.uint64(31), out=t)
        x ^= t
    return x


def row_uniforms(seed: int, origin: str, first_row: int, n: int,
                 row_ids: np.ndarray | None = None) -> np.ndarray:
    """Uniform(0, 1) numbers, one per row, that depend only on the row identity.

    Rows are ``first_row, ..., first_row + n - 1`` of ``origin``, or the
    given ``row_ids`` when a source removed rows.  The hash of a row is
    ``splitmix64(splitmix64(base) ^ row)``; the inner one is the same for
    every row, so it is taken once, and the outer one is computed in place
    (a chunk's temporaries are a few arrays, not a dozen).
    """
    base = (np.uint64(seed & 0xFFFFFFFF) << np.uint64(32)) ^ np.uint64(zlib.crc32(origin.encode()))
    key = _splitmix64(np.full(1, base, dtype=np.uint64))[0]
    if row_ids is None:
        h = np.arange(first_row, first_row + n, dtype=np.uint64)
    else:
        h = np.asarray(row_ids).astype(np.uint64)  # a copy: hashed in place
    h ^= key
    _splitmix64_inplace(h)
    h >>= np.uint64(11)
    u = h.astype(np.float64)
    u += 0.5
    u *= 2.0 ** -53
    return u


def top_keys(keys: np.ndarray, size: int) -> np.ndarray:
    """Positions of the ``size`` largest ``keys``, in ascending order.

    Of equal keys the earlier positions win, so the set is the first
    ``size`` of a stable sort of ``-keys``; found by a partition (linear
    time) instead of a sort.
    """
    n = keys.size
    if n <= size:
        return np.arange(n)
    if size <= 0:
        return np.empty(0, dtype=np.intp)
    threshold = keys[np.argpartition(keys, n - size)[n - size]]  # the size-th largest
    keep = keys > threshold
    tied = np.flatnonzero(keys == threshold)
    keep[tied[: size - int(np.count_nonzero(keep))]] = True
    return np.flatnonzero(keep)


def key_floor(size: int, n_rows: int | None) -> float:
    """The key floor of a pass over ``n_rows`` rows drawing ``size`` (−inf: none).

    Of ``n_rows`` rows of unit weight, the keys log(u) above the floor are
    expected to number ``1.5 size + 10 √size`` (their count is binomial, so
    fewer than ``size`` is many standard deviations away); with no known
    ``n_rows``, or too few rows for a floor to save work, there is none.
    """
    if not n_rows or size <= 0:
        return -math.inf
    expected = 1.5 * size + 10.0 * math.sqrt(size)
    if expected >= 0.5 * n_rows:
        return -math.inf
    return math.log1p(-expected / n_rows)


@dataclass(frozen=True)
class Profile:
    """Pass-0 statistics: row counts, a weighted reservoir sample, the
    weighted moments of (x, y) (:class:`~streammix.core.moments.Moments`) and
    the largest magnitude of each column (features, then y) over the rows of
    positive weight (``max_abs``; see :mod:`streammix.algorithms.scales`); mergeable.
    ``w`` holds the weights of the sample rows (the data's, when the sample holds
    every row of positive weight).  ``floored`` counts the rows of positive
    weight that a key floor left out (see :meth:`exact`).

    A lazy profile (of ``ProfileTask(lazy=True)``) has empty ``X``, ``y`` and
    ``w`` and its sample rows in ``parts``: blocks ``(X, y, w, rows)`` of which
    the positions ``rows`` (ascending) are the sample, block after block, in
    the order of ``keys``; :meth:`settled` gathers them.  It is settled when
    pickled, so that a cluster sends the sample rows and not the chunks."""

    n_rows: int
    n_positive: int
    sum_w: float
    size: int
    keys: np.ndarray
    X: np.ndarray
    y: np.ndarray
    moments: Moments | None = None
    max_abs: np.ndarray | None = None
    w: np.ndarray | None = None
    floored: int = 0
    parts: tuple = ()

    def exact(self, floor: float) -> bool:
        """Whether this sample is the one a pass without the key ``floor`` draws:
        no row was left out, or at least ``size`` kept keys are above the floor
        (then every left-out row's key is below the ``size``-th largest)."""
        return self.floored == 0 or int(np.count_nonzero(self.keys > floor)) >= self.size

    @classmethod
    def empty(cls, n_features: int, size: int) -> Profile:
        return cls(0, 0, 0.0, size, np.empty(0), np.empty((0, n_features)), np.empty(0),
                   Moments.zeros(n_features), np.zeros(n_features + 1), np.empty(0))

    @property
    def lazy(self) -> bool:
        """Whether the sample rows are still in :attr:`parts` (see :meth:`settled`)."""
        return bool(self.parts)

    def settled(self) -> Profile:
        """This profile with its sample rows gathered into ``X``, ``y`` and ``w``
        (itself if it is not lazy)."""
        if not self.parts:
            return self
        X, y, w = _gather(self.parts, self.X.shape[1])
        return dataclasses.replace(self, X=X, y=y, w=w, parts=())

    def __reduce__(self):
        settled = self.settled()
        return (Profile, tuple(getattr(settled, f.name) for f in dataclasses.fields(Profile)))

    def _blocks(self) -> tuple:
        """The sample rows as lazy blocks (a settled profile is one block of all its rows)."""
        if self.parts or not self.keys.size:
            return self.parts
        return ((self.X, self.y, self.w, None),)

    def __add__(self, other: Profile) -> Profile:
        if self.parts or other.parts:
            return self._lazy_add(other)
        keys = np.concatenate([self.keys, other.keys])
        weighted = self.w is not None and other.w is not None
        w = None
        if keys.size > self.size:  # gather the winners: one copy of the sample rows
            top = top_keys(keys, self.size)
            split = int(np.searchsorted(top, self.keys.size))
            mine, theirs = top[:split], top[split:] - self.keys.size
            keys = keys[top]
            X = np.concatenate([self.X[mine], other.X[theirs]])
            y = np.concatenate([self.y[mine], other.y[theirs]])
            if weighted:
                w = np.concatenate([self.w[mine], other.w[theirs]])
        else:
            X = np.concatenate([self.X, other.X])
            y = np.concatenate([self.y, other.y])
            if weighted:
                w = np.concatenate([self.w, other.w])
        return self._merged(other, keys, X, y, w)

    def _lazy_add(self, other: Profile) -> Profile:
        """:meth:`__add__` of lazy profiles: keys and row positions only."""
        keys = np.concatenate([self.keys, other.keys])
        parts = self._blocks() + other._blocks()
        if keys.size > self.size:
            top = top_keys(keys, self.size)
            keys = keys[top]
            ends = np.cumsum([_count(part) for part in parts])
            bounds = np.searchsorted(top, ends)
            kept, lo = [], 0
            for part, hi, end in zip(parts, bounds, ends, strict=True):
                if hi > lo:
                    kept.append(_select(part, top[lo:hi] - (end - _count(part))))
                lo = hi
            parts = tuple(kept)
        if sum(part[1].shape[0] for part in parts) > LAZY_ROWS_FACTOR * max(self.size, 1):
            parts = (_gather(parts, self.X.shape[1]) + (None,),)  # bound what it refers to
        merged = self._merged(other, keys, self.X[:0], self.y[:0], np.empty(0))
        return dataclasses.replace(merged, parts=parts)

    def _merged(self, other: Profile, keys, X, y, w) -> Profile:
        moments = None
        if self.moments is not None and other.moments is not None:
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                moments = self.moments + other.moments  # see ProfileTask
        max_abs = None
        if self.max_abs is not None and other.max_abs is not None:
            max_abs = np.maximum(self.max_abs, other.max_abs)
        return Profile(self.n_rows + other.n_rows, self.n_positive + other.n_positive,
                       self.sum_w + other.sum_w, self.size, keys, X, y, moments, max_abs, w,
                       self.floored + other.floored)


def _count(part) -> int:
    """Sample rows of a lazy block ``(X, y, w, rows)``."""
    return part[1].shape[0] if part[3] is None else part[3].size


def _select(part, chosen: np.ndarray):
    """The block ``part`` keeping only its sample rows at the positions ``chosen``."""
    X, y, w, rows = part
    return X, y, w, (chosen if rows is None else rows[chosen])


def _gather(parts, d: int):
    """The sample rows of the lazy blocks ``parts``, in order: X (n, d), y, w (None
    if a block has no weights), float64, as :meth:`Profile.__add__` gathers them."""
    n = sum(_count(part) for part in parts)
    X, y = np.empty((n, d)), np.empty(n)
    w = None if any(part[2] is None for part in parts) else np.empty(n)
    at = 0
    for part in parts:
        Xp, yp, wp, rows = part
        k = _count(part)
        X[at:at + k] = Xp if rows is None else Xp[rows]
        y[at:at + k] = yp if rows is None else yp[rows]
        if w is not None:
            w[at:at + k] = wp if rows is None else wp[rows]
        at += k
    return X, y, w


@dataclass(frozen=True)
class ProfileTask:
    """Map function of pass 0: count rows and draw the reservoir sample.

    Rows are sampled without replacement with probability growing with their
    weight (Efraimidis–Spirakis keys log(u)/w); zero-weight rows never enter.
    In a chunk whose weights are all 1, rows whose key is at or below
    ``floor`` (:func:`key_floor`) are left out and counted.  Without
    ``spectral`` the moments leave out the sums only the spectral start reads;
    without ``moments`` there are none (``Profile.moments`` is None).
    With ``lazy`` the profiles are lazy (:meth:`Profile.settled` gathers the
    sample after the pass).
    """

    seed: int
    size: int
    floor: float = -math.inf
    spectral: bool = True  # the spectral sums of the moments (Moments.of)
    moments: bool = True  # the moments at all (None without: a fit that neither
    # standardises nor starts from the spectral matrix reads none of them)
    lazy: bool = False  # profiles that gather their rows once, at the end (Profile.settled)

    @property
    def releases_gil(self) -> bool:
        """The pass runs on the engine's threads: its work is in large numpy
        and BLAS calls, which release the GIL."""
        return True

    @property
    def bulky_results(self) -> bool:
        """Without a key floor a chunk's profile can hold ``size`` sample rows, so a
        cluster sums them two at a time (with one, the rows of all of them together
        are about 1.5 ``size``)."""
        return self.floor == -math.inf

    def _keys(self, u: np.ndarray, w: np.ndarray):
        """A chunk's candidates from its rows' uniforms ``u`` and weights ``w``:
        ``(unit, n_positive, floored, positions, keys)``, at most ``size`` of them."""
        unit = bool(w.size) and w.min() == 1.0 == w.max()
        floored = 0
        if unit:  # keys log(u) / 1 = log(u)
            n_positive = w.size
            if self.floor > -math.inf:
                idx, keys = _above_floor(u, self.floor)
                floored = w.size - idx.size
            else:
                idx, keys = np.arange(w.size), np.log(u)
        else:
            pos = w > 0
            n_positive = int(pos.sum())
            keys = np.where(pos, np.log(u) / np.where(pos, w, 1.0), -np.inf)
            idx = np.flatnonzero(pos)
            keys = keys[idx]
        if idx.size > self.size:
            top = top_keys(keys, self.size)
            idx, keys = idx[top], keys[top]
        return unit, n_positive, floored, idx, keys

    def __call__(self, chunk: Chunk) -> Profile:
        w = chunk.w
        u = row_uniforms(self.seed, chunk.origin, chunk.first_row, chunk.n_rows,
                         getattr(chunk, "row_ids", None))
        unit, n_positive, floored, idx, keys = self._keys(u, w)
        # Columns beyond ±1e60 overflow the moments; max_abs finds them and the fit
        # takes the moments again on a safe scale (streammix.algorithms.scales).
        moments = _moments(chunk.X, chunk.y, w, self) if self.moments else None
        whole = idx.size == chunk.n_rows
        counts = (chunk.n_rows, n_positive, float(w.sum()), self.size, keys)
        rest = (moments, _max_abs(chunk.X, chunk.y, None if unit else w > 0))
        if self.lazy:
            if whole:  # every row kept: one plain copy of each (a reader may reuse its arrays)
                part = tuple(np.array(a, dtype=float, order="K")
                             for a in (chunk.X, chunk.y, w)) + (None,)
            else:
                part = (np.asarray(chunk.X[idx], float), np.asarray(chunk.y[idx], float),
                        np.asarray(w[idx], float), None)
            empty = np.empty((0, chunk.X.shape[1]))
            return Profile(*counts, empty, np.empty(0), *rest, np.empty(0), floored,
                           (part,) if idx.size else ())
        if whole:  # every row kept: a copy, not a gather (same array)
            X = np.ascontiguousarray(chunk.X, dtype=float)
            if X is chunk.X or np.shares_memory(X, chunk.X):
                X = X.copy()
        else:
            X = np.asarray(chunk.X[idx], float)
        return Profile(*counts, X, np.asarray(chunk.y[idx], float), *rest,
                       np.asarray(w[idx], float), floored)


def _moments(X, y, w, task: ProfileTask) -> Moments:
    """The moments of one chunk's rows, as ``task`` asks for them."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return Moments.of(X, y, w, spectral=task.spectral)


def profile_arrays(task: ProfileTask, X: np.ndarray, y: np.ndarray, w: np.ndarray,
                   bounds: list[tuple[int, int]], origin: str = "array", map=map) -> Profile:
    """The settled profile of a pass of ``task`` over the chunks ``bounds`` of
    in-memory arrays, without the pass's copies of chunks and merges of samples.

    The chunks are the rows ``start:stop`` of ``X``, ``y`` and ``w`` (an
    :class:`~streammix.data.arrays.ArraySource`'s: ``origin``, first row
    ``start``), in order and covering every row.  Each chunk's candidates,
    counts, largest magnitudes and moments are the pass's (``map(f, bounds)``
    computes them, e.g. on a thread pool's ``map``); the sample is then the
    ``size`` largest keys of all candidates in the order (key, then earlier
    row) that every merge of the pass keeps, gathered from the arrays by
    index, and the sums are summed in the pass's tree
    (:func:`~streammix.core.reduce.tree_sum`): the pass's profile, bit for
    bit.  With a key floor that leaves fewer than ``size`` keys above it
    (:meth:`Profile.exact`), the profile is the one without it.
    """
    n, d = X.shape
    if not bounds:
        return Profile.empty(d, task.size)
    if bounds[0][0] != 0 or bounds[-1][1] != n or any(
            a[1] != b[0] for a, b in zip(bounds, bounds[1:], strict=False)):
        raise ValueError("the chunks must cover the rows in order")

    def chunk(bound):
        start, stop = bound
        Xc, yc, wc = X[start:stop], y[start:stop], w[start:stop]
        unit, n_positive, floored, idx, keys = task._keys(
            row_uniforms(task.seed, origin, start, stop - start), wc)
        moments = _moments(Xc, yc, wc, task) if task.moments else None
        return (n_positive, floored, float(wc.sum()), idx + start, keys, moments,
                _max_abs(Xc, yc, None if unit else wc > 0))

    parts = list(map(chunk, bounds))
    keys = np.concatenate([part[4] for part in parts])
    floored = sum(part[1] for part in parts)
    if floored and int(np.count_nonzero(keys > task.floor)) < task.size:
        return profile_arrays(dataclasses.replace(task, floor=-math.inf), X, y, w, bounds,
                              origin, map)
    idx = np.concatenate([part[3] for part in parts])
    if keys.size > task.size:
        top = top_keys(keys, task.size)
        idx, keys = idx[top], keys[top]
    moments = None
    if task.moments:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # as the merges
            moments = tree_sum([part[5] for part in parts], None)
    return Profile(n, sum(part[0] for part in parts), tree_sum([part[2] for part in parts], 0.0),
                   task.size, keys, np.asarray(X[idx], float), np.asarray(y[idx], float),
                   moments, np.max([part[6] for part in parts], axis=0),
                   np.asarray(w[idx], float), floored)


def _above_floor(u: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions and keys ``log(u)`` of the rows whose key is above ``floor``.

    The logarithm is taken only of the rows whose ``u`` comes near
    ``exp(floor)`` or above it (a margin far wider than the rounding of
    ``log`` and ``exp``), and the floor is then applied to those keys: the
    same rows and keys as ``log(u) > floor`` over every row, for about 1.5
    times the sample's rows instead of all of them.
    """
    near = np.flatnonzero(u > math.exp(floor) * (1.0 - 1e-9))
    keys = np.log(u[near])
    above = keys > floor
    return near[above], keys[above]


def _max_abs(X: np.ndarray, y: np.ndarray, pos: np.ndarray | None) -> np.ndarray:
    """Largest |value| of each feature and of y over the rows of positive weight
    (``pos``; None: every row), from each column's largest and smallest value
    (no |X| temporary; NaN propagates as through ``abs``)."""
    d = X.shape[1]
    if pos is not None and not pos.all():
        if not pos.any():
            return np.zeros(d + 1)
        X, y = X[pos], y[pos]
    if not len(y):
        return np.zeros(d + 1)
    top = np.append(_column_reduce(np.maximum, X), np.max(y))
    bottom = np.append(_column_reduce(np.minimum, X), np.min(y))
    return np.abs(np.maximum(top, -bottom))


#: :func:`_column_reduce` folds this many values of a C-ordered X into one row.
FOLD_VALUES = 4096


def _column_reduce(op: np.ufunc, X: np.ndarray) -> np.ndarray:
    """``op.reduce(X, axis=0)`` for ``op`` :data:`numpy.maximum` or :data:`numpy.minimum`.

    numpy reduces a C-ordered (n, d) X of few columns a row at a time, a
    loop of d values per row (200k x 4: 15 ms against 0.7 ms by columns); so
    its rows are folded k at a time into rows of k·d values, reduced, and the
    k partial results reduced again.  A maximum is the same whatever the
    order it is taken in (NaN propagates either way).
    """
    n, d = X.shape
    k = FOLD_VALUES // max(d, 1)
    if not X.flags.c_contiguous or k < 2 or n < 2 * k:
        return op.reduce(X, axis=0)
    body = n - n % k
    out = op.reduce(op.reduce(X[:body].reshape(body // k, k * d), axis=0).reshape(k, d),
                    axis=0)
    return op(out, op.reduce(X[body:], axis=0)) if body < n else out
