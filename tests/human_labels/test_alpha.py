from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest

from human_labels import AgreementError, hayes_krippendorff, interval_alpha, krippendorff_alpha

NAN = math.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 coders × 12 units example.
CANONICAL = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_canonical_example(level: str, expected: float) -> None:
    assert round(krippendorff_alpha(CANONICAL, level), 3) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("level", ["interval", "ratio"])
def test_closed_form_paths_equal_the_package_on_random_data(level: str) -> None:
    rng = np.random.default_rng(7)
    truth = rng.uniform(1, 5, size=300)
    data = truth + rng.normal(0, 0.8, size=(4, 300))
    data = np.round(np.clip(data, 0.5, 6), 2)
    data[rng.random(data.shape) < 0.2] = np.nan
    ours = krippendorff_alpha(data, level)  # type: ignore[arg-type]
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert ours == pytest.approx(theirs, abs=1e-10)


def test_interval_alpha_scales_to_continuous_scores_without_a_values_axis() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200_000)
    data = truth + rng.normal(0, 0.5, size=(3, truth.size))
    value = interval_alpha(data)
    # Expected α for this model: var(truth) / (var(truth) + noise²) = 1 / 1.25
    assert value == pytest.approx(0.8, abs=0.01)


def test_undefined_cases_raise() -> None:
    with pytest.raises(AgreementError, match="no variation"):
        krippendorff_alpha([[1, 1, 1], [1, 1, 1]], "interval")
    with pytest.raises(AgreementError, match="two or more values"):
        krippendorff_alpha([[1, NAN], [NAN, 2]], "nominal")
    with pytest.raises(AgreementError, match="at least two coders"):
        krippendorff_alpha([[1, 2, 3]], "nominal")


def test_hayes_krippendorff_bootstrap() -> None:
    estimate = hayes_krippendorff(CANONICAL, "nominal", n_boot=2000, random_state=1)
    assert estimate.value == pytest.approx(0.743, abs=5e-4)
    assert estimate.low < estimate.value < estimate.high
    assert 0.0 <= estimate.p_below_0800 <= 1.0
    assert estimate.p_below_0667 <= estimate.p_below_0800
    # Seeded: the same call gives the same interval.
    again = hayes_krippendorff(CANONICAL, "nominal", n_boot=2000, random_state=1)
    assert (again.low, again.high) == (estimate.low, estimate.high)


@pytest.mark.parametrize("level", ["ordinal", "interval", "ratio"])
def test_hayes_krippendorff_other_levels_centre_on_alpha(level: str) -> None:
    estimate = hayes_krippendorff(CANONICAL, level, n_boot=1000)  # type: ignore[arg-type]
    assert estimate.low <= estimate.value <= estimate.high


def test_hayes_krippendorff_on_reliable_data_rarely_falls_below_the_bars() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(1, 6, size=400)
    data = np.stack(
        [np.where(rng.random(400) < 0.95, truth, rng.integers(1, 6, size=400)) for _ in range(3)]
    ).astype(float)
    estimate = hayes_krippendorff(data, "nominal", n_boot=1000)
    assert estimate.value > 0.85
    assert estimate.p_below_0800 < 0.05
