"""The one percentile (llmwatch.stats): linear interpolation, as numpy's default computes it."""

from __future__ import annotations

import random

import numpy as np
import pytest

from llmwatch.stats import percentile

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_the_nearest_ranks() -> None:
    assert percentile(range(1, 101), 99) == pytest.approx(99.01)
    assert percentile([2.0, 1.0], 50) == 1.5
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0 and percentile([3.0, 1.0, 2.0], 100) == 3.0
    assert percentile([], 50) is None


def test_percentile_is_numpys_default() -> None:
    rng = random.Random(23)
    for _ in range(200):
        values = [rng.lognormvariate(0, 1) for _ in range(rng.randint(1, 60))]
        q = rng.choice([50, 90, 95, 99, rng.uniform(0, 100)])
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)


def test_a_percentile_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 150)
