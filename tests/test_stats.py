"""The intervals against published values, and kappa against a worked example."""

from __future__ import annotations

import pytest

from moderation.stats import clopper_pearson, cohen_kappa, upper_bound


def test_clopper_pearson_at_the_edges_has_its_closed_form():
    # k = 0 and k = n: the bounds solve (1 - p)**n = alpha/2 and p**n = alpha/2
    assert clopper_pearson(0, 10).high == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-9)
    assert clopper_pearson(10, 10).low == pytest.approx(0.025 ** (1 / 10), rel=1e-9)
    assert (clopper_pearson(0, 10).low, clopper_pearson(10, 10).high) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n"), [(1, 7), (3, 10), (50, 1000), (999, 1000)])
def test_clopper_pearson_bounds_are_where_the_binomial_tails_hold_alpha_over_two(k, n):
    # the definition, checked with the binomial distribution rather than the beta quantiles
    from scipy.stats import binom

    interval = clopper_pearson(k, n, 0.95)
    assert binom.sf(k - 1, n, interval.low) == pytest.approx(0.025, rel=1e-6)  # P(X >= k)
    assert binom.cdf(k, n, interval.high) == pytest.approx(0.025, rel=1e-6)  # P(X <= k)
    assert interval.low < k / n < interval.high


def test_the_upper_bound_of_zero_in_n_is_the_rule_of_three_roughly():
    # 0 errors in 300: the 95% one-sided bound is 1 - 0.05**(1/300) (about 3/300)
    assert upper_bound(0, 300, 0.95) == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-9)
    assert upper_bound(5, 5) == 1.0 and clopper_pearson(0, 0).high == 1.0


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson(3, 2)
    with pytest.raises(ValueError, match="confidence"):
        upper_bound(1, 2, 1.0)


def test_cohen_kappa_of_a_worked_example():
    # 50 items: both yes 20, both no 15, yes/no 5, no/yes 10 -> po 0.7, pe 0.5, kappa 0.4
    pairs = [("y", "y")] * 20 + [("n", "n")] * 15 + [("y", "n")] * 5 + [("n", "y")] * 10
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([]) is None and cohen_kappa([("y", "y")] * 3) is None
