"""The statistical tests that decide whether a model learned a mark.

Two tests, on the probability a model gives label j to auxiliary images blended with a mark:

- ``paper_verifier``: the paper's V (Algorithm 1). Per round, a one-sided paired t-test of P(j) under the true
  mark t against P(j) under one external mark t' on the same images; V = 1 when more than a share delta of the
  Q rounds have p < lambda. Kept to reproduce the paper. It is not calibrated: any two marks shift P(j) by
  different amounts, so on a model that never saw t the paired test still finds a difference (the preliminary
  measurement here: V = 1 in 30-55% of trials on clean models).
- ``panel_rank_pvalue``: the default. The true mark's mean P(j) is ranked among K external marks from the same
  generator, blended into the same images. A model that never saw the true mark cannot tell it apart from the
  external ones, so under that null the K + 1 statistics are exchangeable and the rank p-value
  (1 + #{external >= true}) / (K + 1) is exact: P(p <= alpha) <= alpha for every model and every alpha.

``holm`` adjusts the p-values of several marks (one per site and epoch) for testing them all at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PaperVerdict:
    detected: bool
    round_pvalues: list[float]
    significant_rounds: int


def paper_verifier(true_probs: np.ndarray, external_probs: np.ndarray, lam: float = 0.1,
                   delta: float = 0.6) -> PaperVerdict:
    """The paper's V from (Q, n) arrays of P(j): row q holds round q's n images under t and under t'."""
    true_probs, external_probs = np.atleast_2d(true_probs), np.atleast_2d(external_probs)
    if true_probs.shape != external_probs.shape:
        raise ValueError("the true and external probabilities must have the same (rounds, images) shape")
    pvalues = [float(stats.ttest_rel(t, e, alternative="greater").pvalue) for t, e in zip(true_probs,
                                                                                           external_probs)]
    pvalues = [1.0 if np.isnan(p) else p for p in pvalues]  # identical columns: no evidence either way
    significant = sum(p < lam for p in pvalues)
    return PaperVerdict(detected=significant / len(pvalues) > delta, round_pvalues=pvalues,
                        significant_rounds=significant)


def panel_rank_pvalue(true_statistic: float, panel_statistics: np.ndarray) -> float:
    """Exact p-value of the true mark's statistic ranked among K exchangeable external ones (ties count
    against the true mark, which keeps the test valid)."""
    panel = np.asarray(panel_statistics, dtype=np.float64)
    if panel.ndim != 1 or panel.size == 0:
        raise ValueError("the panel needs at least one external mark")
    if not np.isfinite(true_statistic) or not np.all(np.isfinite(panel)):
        raise ValueError("statistics must be finite numbers")
    return float((1 + np.count_nonzero(panel >= true_statistic)) / (panel.size + 1))


def smallest_pvalue(panel_size: int) -> float:
    """The strongest evidence a panel of this size can give: 1 / (K + 1)."""
    return 1.0 / (panel_size + 1)


def holm(pvalues: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment: controls the chance of any false detection among several marks."""
    raw = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(raw, kind="stable")
    count = raw.size
    stepped = np.maximum.accumulate((count - np.arange(count)) * raw[order])
    adjusted = np.empty(count)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def welch_greater(with_mark: np.ndarray, without_mark: np.ndarray) -> float:
    """One-sided unpaired Welch t-test: do photos carrying a physical mark score higher than photos without it?
    (The paper's section 6; the two groups are different photos, so nothing is paired.)"""
    result = stats.ttest_ind(with_mark, without_mark, equal_var=False, alternative="greater")
    return 1.0 if np.isnan(result.pvalue) else float(result.pvalue)


def distinguisher_pvalues(scores: np.ndarray) -> np.ndarray:
    """The distinguisher V_D for marks of different users in different classes: scores[i, k] is mark k's
    effect on mark i's label. Mark i is attributed to its label when its own effect ranks first among all the
    marks' effects on that label; the rank p-value is exact when the marks come from one generator."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError("the distinguisher needs a square matrix of at least two marks")
    return np.array([panel_rank_pvalue(row[i], np.delete(row, i)) for i, row in enumerate(scores)])
