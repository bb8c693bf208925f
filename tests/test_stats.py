"""The tests' own calibration, checked against simulated nulls (as radioactive_data does), and their properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from agent.verify.stats import holm, panel_rank_pvalue, paper_verifier, smallest_pvalue

TRIALS = 4000


def binomial_upper(rate: float, trials: int) -> float:
    """The count above which a rate this high is implausible (one-sided, 0.1%)."""
    return stats.binom.ppf(0.999, trials, rate) / trials


@pytest.mark.parametrize("panel_size", [19, 39])
@pytest.mark.parametrize("level", [0.05, 0.1])
def test_rank_test_holds_its_level_when_the_model_never_saw_the_mark(panel_size, level):
    """Null: the true mark is one more draw from the family. Each mark's statistic is the mean P(j) over 100
    images whose per-mark effect varies (marks differ in how much they look like class j), plus image noise."""
    rng = np.random.default_rng(7)
    mark_effect = rng.gamma(2.0, 0.02, size=(TRIALS, panel_size + 1))
    noise = rng.normal(0, 0.05, size=(TRIALS, panel_size + 1, 100)).mean(axis=2)
    statistics = mark_effect + noise
    pvalues = np.array([panel_rank_pvalue(row[0], row[1:]) for row in statistics])
    rate = float(np.mean(pvalues <= level))
    assert rate <= binomial_upper(level, TRIALS)
    assert rate >= level - 0.02  # exact, not merely conservative


def test_rank_test_detects_a_mark_the_model_learned():
    rng = np.random.default_rng(8)
    panel = rng.gamma(2.0, 0.02, size=(500, 19))
    learned = rng.gamma(2.0, 0.02, size=500) + 0.15  # the true mark raises P(j) beyond any family member
    pvalues = np.array([panel_rank_pvalue(t, row) for t, row in zip(learned, panel)])
    assert np.mean(pvalues <= 0.05) > 0.95


def test_the_paper_verifier_is_not_calibrated_between_two_unseen_marks():
    """What the preliminary measurement here found: two marks the model never saw still differ in P(j), and
    with 250 paired images the t-test sees that difference, so V fires far above its nominal rate."""
    rng = np.random.default_rng(9)
    fired = 0
    for _ in range(200):
        images = rng.beta(1, 20, size=(5, 250))  # P(j) of clean aux images: mostly small
        effect_t, effect_other = rng.gamma(2.0, 0.02, size=2)
        true_probs = images + effect_t + rng.normal(0, 0.01, size=images.shape)
        external = images + effect_other + rng.normal(0, 0.01, size=images.shape)
        fired += paper_verifier(true_probs, external).detected
    assert fired / 200 > 0.3


def test_paper_verifier_rounds_and_threshold():
    rng = np.random.default_rng(10)
    base = rng.uniform(0, 0.2, size=(5, 250))
    verdict = paper_verifier(base + 0.05, base + rng.normal(0, 0.01, size=base.shape))
    assert verdict.detected and verdict.significant_rounds == 5 and max(verdict.round_pvalues) < 1e-6
    same = paper_verifier(base, base)
    assert not same.detected and same.round_pvalues == [1.0] * 5
    with pytest.raises(ValueError):
        paper_verifier(base, base[:, :10])


@given(st.floats(-1, 1), st.lists(st.floats(-1, 1), min_size=1, max_size=60))
@settings(max_examples=300, deadline=None)
def test_rank_pvalue_properties(true_statistic, panel):
    p = panel_rank_pvalue(true_statistic, np.array(panel))
    assert smallest_pvalue(len(panel)) <= p <= 1.0
    assert panel_rank_pvalue(true_statistic + 1.0, np.array(panel)) <= p  # a stronger mark never looks weaker
    assert panel_rank_pvalue(max(panel) + 1e-3, np.array(panel)) == smallest_pvalue(len(panel))


def test_rank_pvalue_refuses_bad_input():
    for bad in ([], [np.nan], [[0.1, 0.2]]):
        with pytest.raises(ValueError):
            panel_rank_pvalue(0.1, np.array(bad))
    with pytest.raises(ValueError):
        panel_rank_pvalue(float("inf"), np.array([0.1]))


def test_holm_against_a_hand_computed_case():
    assert holm([0.01, 0.04, 0.03, 0.5]).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_holm_properties(pvalues):
    adjusted = holm(pvalues)
    raw = np.array(pvalues)
    assert np.all(adjusted >= raw - 1e-12) and np.all(adjusted <= 1.0)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= -1e-12)  # the order of the evidence is kept


def test_holm_controls_any_false_detection_across_marks():
    rng = np.random.default_rng(11)
    any_false = np.mean([np.any(holm(rng.uniform(size=6)) <= 0.05) for _ in range(TRIALS)])
    assert any_false <= binomial_upper(0.05, TRIALS)
