"""Drift statistics (domain/drift.py) against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tagloop.domain import drift


def test_psi_of_a_two_bin_shift_is_the_hand_computed_value():
    # shares 0.5/0.5 → 0.8/0.2: 0.3·ln(0.8/0.5) + (−0.3)·ln(0.2/0.5) = 0.3·ln(1.6/0.4) = 0.3·ln 4
    assert drift.psi({"a": 50, "b": 50}, {"a": 80, "b": 20}) == pytest.approx(0.3 * math.log(4), abs=1e-12)
    assert drift.psi([50, 50], [80, 20]) == pytest.approx(0.4158883083, abs=1e-9)


def test_psi_is_symmetric_and_zero_for_the_same_shares():
    assert drift.psi({"a": 80, "b": 20}, {"a": 50, "b": 50}) == pytest.approx(0.3 * math.log(4))
    assert drift.psi({"a": 10, "b": 30}, {"a": 100, "b": 300}) == pytest.approx(0.0, abs=1e-12)


def test_psi_counts_an_empty_bin_with_the_epsilon_share():
    # expected: a 100 %, b 0 % (→ 0.0001); actual: 50 % / 50 %
    # (0.5 − 1)·ln(0.5) + (0.5 − 0.0001)·ln(0.5 / 0.0001)
    by_hand = -0.5 * math.log(0.5) + 0.4999 * math.log(5_000)
    assert by_hand == pytest.approx(4.604319, abs=1e-6)
    assert drift.psi({"a": 100}, {"a": 50, "b": 50}) == pytest.approx(by_hand, abs=1e-12)


def test_psi_of_a_three_label_shift():
    # e = 0.5, 0.3, 0.2; a = 0.3, 0.3, 0.4 → −0.2·ln(0.6) + 0 + 0.2·ln 2
    by_hand = -0.2 * math.log(0.6) + 0.2 * math.log(2)
    got = drift.psi({"x": 500, "y": 300, "z": 200}, {"x": 30, "y": 30, "z": 40})
    assert got == pytest.approx(by_hand, abs=1e-12)
    assert got == pytest.approx(0.240795, abs=1e-6)


def test_psi_needs_counts_on_both_sides():
    assert drift.psi({}, {"a": 3}) is None
    assert drift.psi({"a": 0}, {"a": 3}) is None
    assert drift.psi([1, 2], [0, 0]) is None
    with pytest.raises(ValueError, match="not a count"):
        drift.psi({"a": -1}, {"a": 3})
    with pytest.raises(ValueError, match="not a count"):
        drift.psi({"a": float("nan")}, {"a": 3})


def test_chi_squared_of_a_two_by_two_table_is_the_hand_computed_value():
    # [[50, 50], [80, 20]]: expected cells 65, 35, 65, 35 → χ² = 2·15²/65 + 2·15²/35, 1 dof;
    # with 1 degree of freedom the p-value is erfc(√(χ²/2))
    by_hand = 2 * 225 / 65 + 2 * 225 / 35
    test = drift.chi_squared([50, 50], [80, 20])
    assert test is not None
    assert test.statistic == pytest.approx(by_hand, abs=1e-9)
    assert test.statistic == pytest.approx(19.78022, abs=1e-5)
    assert test.dof == 1
    assert test.p_value == pytest.approx(math.erfc(math.sqrt(by_hand / 2)), rel=1e-9)


def test_chi_squared_leaves_out_bins_empty_on_both_sides_and_needs_two():
    full = drift.chi_squared([50, 0, 50], [80, 0, 20])
    assert full is not None and full.dof == 1
    assert full.statistic == pytest.approx(drift.chi_squared([50, 50], [80, 20]).statistic)  # type: ignore[union-attr]
    assert drift.chi_squared({"a": 5}, {"a": 9}) is None
    assert drift.chi_squared({"a": 5, "b": 1}, {}) is None


def test_score_bins_are_tenths_with_one_in_the_last():
    assert [drift.score_bin(s) for s in (0.0, 0.05, 0.0999, 0.1, 0.3, 0.1 + 0.2, 0.95, 0.9999, 1.0)] == [
        0,
        0,
        0,
        1,
        3,
        3,
        9,
        9,
        9,
    ]
    assert drift.score_bin(-0.5) == 0 and drift.score_bin(7.0) == 9
    assert drift.score_histogram([0.05, 0.15, 0.15, 0.99, float("nan"), 1.0]) == [
        1,
        2,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        2,
    ]


def test_synthetic_shifted_scores_drift_and_unshifted_ones_do_not():
    rng = np.random.default_rng(7)
    reference = np.clip(rng.beta(8, 2, 20_000), 0, 1)  # a confident model: scores near 0.8
    same = np.clip(rng.beta(8, 2, 5_000), 0, 1)
    shifted = np.clip(rng.beta(4, 3, 5_000), 0, 1)  # less confident: mean 0.57
    base = drift.score_histogram(reference)
    assert drift.psi(base, drift.score_histogram(same)) < 0.01  # type: ignore[operator]
    assert drift.psi(base, drift.score_histogram(shifted)) > 0.5  # type: ignore[operator]
    unmoved = drift.ks_test(list(reference), list(same))
    moved = drift.ks_test(list(reference), list(shifted))
    assert unmoved is not None and moved is not None
    assert unmoved.p_value > 0.01 and moved.p_value < 1e-10
    assert moved.statistic > 0.3
    assert drift.ks_test([], [0.5]) is None


def test_ks_statistic_is_the_largest_gap_between_the_two_step_functions():
    # F1 steps at 0.1, 0.2, 0.3; F2 at 0.25, 0.35, 0.45: after 0.2 F1 = 2/3, F2 = 0 → D = 2/3
    test = drift.ks_test([0.1, 0.2, 0.3], [0.25, 0.35, 0.45])
    assert test is not None and test.statistic == pytest.approx(2 / 3)


def test_compare_and_the_drift_flag():
    moved = drift.compare({"a": 50, "b": 50}, {"a": 80, "b": 20})
    assert moved.to_dict() == {
        "psi": pytest.approx(0.415888, abs=1e-6),
        "chi2": pytest.approx(19.78022, abs=1e-5),
        "dof": 1,
        "p_value": pytest.approx(8.69e-6, rel=1e-2),
    }
    nothing = drift.compare(None, {"a": 3})
    assert nothing.to_dict() == {"psi": None, "chi2": None, "dof": None, "p_value": None}
    assert drift.drifted([moved], count=100, threshold=0.2, min_count=100)
    assert not drift.drifted([moved], count=99, threshold=0.2, min_count=100)  # too few
    assert not drift.drifted([moved], count=100, threshold=0.5, min_count=100)  # below the threshold
    assert not drift.drifted([nothing], count=1_000, threshold=0.2, min_count=100)
