"""Helpers of the test suite (not tests): data makers, servers, sources, reference data."""

from __future__ import annotations

from pathlib import Path

#: The repository root and the folder of recorded test data.
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
