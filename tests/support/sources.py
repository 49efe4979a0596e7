"""Sources that wrap other sources, to watch what a fit reads."""

from __future__ import annotations


class CountingSource:
    """Wraps a source and counts the reads of each chunk."""

    def __init__(self, inner):
        self.inner = inner
        self.reads: dict = {}

    @property
    def n_features(self):
        return self.inner.n_features

    @property
    def feature_names(self):
        return self.inner.feature_names

    def plan(self):
        return self.inner.plan()

    def read(self, descriptor):
        self.reads[descriptor] = self.reads.get(descriptor, 0) + 1
        return self.inner.read(descriptor)
