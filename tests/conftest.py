"""Fixtures of the whole suite; helpers live in the ``support`` package."""

from __future__ import annotations

import pytest
from support.mixtures import make_mixture

from streammix.core import kernel


@pytest.fixture
def kernel_switch():
    """``kernel_switch(on)`` runs the compiled kernel or the numpy code; restored after."""
    before = kernel.enabled()
    yield kernel.set_enabled
    kernel.set_enabled(before)


@pytest.fixture
def small_mixture():
    return make_mixture(3000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]], [1.0, 0.7],
                        seed=3)


