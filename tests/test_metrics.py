"""detectors.metrics against hand-computed and analytic values."""
import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from detectors.metrics import BinaryMetrics, binary_metrics, roc_curve_points, tpr_at_fpr
from detectors.views import roc_figure

# 4 fakes, 4 reals. Ranked: .9F .8F .7R .6F .5R .3F .2R .1R
HAND_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])
HAND_SCORES = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1])


def test_perfect_separation():
    m = binary_metrics(np.array([0, 0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]))
    assert m.auc == 1.0 and m.ap == 1.0
    assert m.eer == 0.0
    assert 0.3 < m.eer_threshold <= 0.7  # a threshold that separates the classes
    assert m.accuracy == 1.0
    assert m.tpr_at_fpr_1pct == 1.0


def test_reversed_scores():
    m = binary_metrics(np.array([0, 0, 0, 1, 1, 1]), np.array([0.7, 0.8, 0.9, 0.1, 0.2, 0.3]))
    assert m.auc == 0.0
    assert m.eer == 1.0
    assert m.accuracy == 0.0


def test_hand_computed_example():
    m = binary_metrics(HAND_LABELS, HAND_SCORES, threshold=0.5)
    # fake>real pairs: .9 beats 4, .8 beats 4, .6 beats 3, .3 beats 2 -> 13 of 16
    assert m.auc == pytest.approx(13 / 16)
    # precision at each fake's rank: 1/1, 2/2, 3/4, 4/6
    assert m.ap == pytest.approx((1 + 1 + 3 / 4 + 4 / 6) / 4)
    # >= 0.5 is fake: fakes .9 .8 .6 right, reals .2 .1 right (0.5 itself is called fake) -> 5 of 8
    assert m.accuracy == pytest.approx(5 / 8)
    # at threshold .6: FPR = 1/4 (.7), FNR = 1/4 (.3) -> exact crossing
    assert m.eer == pytest.approx(0.25)
    assert m.eer_threshold == pytest.approx(0.6)
    # no real above .7 except .7 itself: FPR 0 allows catching .9 and .8 only
    assert m.tpr_at_fpr_1pct == pytest.approx(0.5)
    assert m.tpr_at_fpr_5pct == pytest.approx(0.5)
    assert (m.n_real, m.n_fake, m.threshold) == (4, 4, 0.5)


def test_eer_interpolates_between_roc_points():
    # fakes .9 .4, reals .6 .5 .1: FNR stays 1/2 while FPR steps 1/3 (t=.6) -> 2/3 (t=.5); they cross halfway
    m = binary_metrics(np.array([1, 1, 0, 0, 0]), np.array([0.9, 0.4, 0.6, 0.5, 0.1]))
    assert m.eer == pytest.approx(0.5)
    assert m.eer_threshold == pytest.approx(0.55)


def test_accuracy_uses_given_threshold():
    assert binary_metrics(HAND_LABELS, HAND_SCORES, threshold=0.55).accuracy == pytest.approx(6 / 8)


def test_eer_of_overlapping_gaussians_matches_analytic_value():
    rng = np.random.default_rng(0)
    n, separation = 10_000, 1.0
    scores = np.concatenate([rng.normal(0.0, 1.0, n), rng.normal(separation, 1.0, n)])
    labels = np.repeat([0, 1], n)
    m = binary_metrics(labels, scores, threshold=0.0)
    # equal variances: errors balance at the midpoint, where each tail holds 1 - Phi(d / 2)
    assert m.eer == pytest.approx(1.0 - norm.cdf(separation / 2), abs=0.02)
    assert m.eer_threshold == pytest.approx(separation / 2, abs=0.05)
    assert m.auc == pytest.approx(norm.cdf(separation / math.sqrt(2)), abs=0.02)


def test_tpr_at_fpr_hand_case():
    # 100 reals at 0.00 .. 0.99; 10 fakes at 0.945, 0.955, ... 1.035: 5 below 0.99, 5 above every real.
    reals = np.arange(100) / 100
    fakes = 0.945 + np.arange(10) / 100
    labels = np.repeat([0, 1], [100, 10])
    scores = np.concatenate([reals, fakes])
    assert tpr_at_fpr(labels, scores, 0.0) == pytest.approx(0.5)  # threshold above every real: the top 5 fakes
    # FPR <= 1 %: only the 0.99 real may be called fake; threshold 0.985 does that and adds fake 0.985
    assert tpr_at_fpr(labels, scores, 0.01) == pytest.approx(0.6)
    # FPR <= 5 %: reals 0.95 .. 0.99 may be called fake; threshold 0.945 catches every fake
    assert tpr_at_fpr(labels, scores, 0.05) == pytest.approx(1.0)
    m = binary_metrics(labels, scores)
    assert (m.tpr_at_fpr_1pct, m.tpr_at_fpr_5pct) == (pytest.approx(0.6), pytest.approx(1.0))


def test_single_class_gives_nan_not_exception():
    m = binary_metrics(np.array([1, 1, 1]), np.array([0.2, 0.6, 0.9]))
    assert math.isnan(m.auc) and math.isnan(m.ap) and math.isnan(m.eer) and math.isnan(m.tpr_at_fpr_1pct)
    assert (m.n_real, m.n_fake) == (0, 3)
    assert m.accuracy == pytest.approx(2 / 3)
    d = m.to_dict()
    assert d["auc"] is None and d["n_fake"] == 3
    json.dumps(d, allow_nan=False)  # JSON-safe


def test_bad_input_raises():
    with pytest.raises(ValueError, match="empty"):
        binary_metrics(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="length"):
        binary_metrics(np.array([0, 1]), np.array([0.1]))
    with pytest.raises(ValueError, match="labels"):
        binary_metrics(np.array([0, 2]), np.array([0.1, 0.2]))


def test_to_dict_has_every_field():
    d = binary_metrics(HAND_LABELS, HAND_SCORES).to_dict()
    assert set(d) == set(BinaryMetrics.__dataclass_fields__)
    assert d["auc"] == pytest.approx(13 / 16)


def test_roc_points_and_figure():
    fpr, tpr, thresholds = roc_curve_points(HAND_LABELS, HAND_SCORES)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(thresholds) < 0)
    with pytest.raises(ValueError, match="both"):
        roc_curve_points(np.array([0, 0]), np.array([0.1, 0.2]))
    figure = roc_figure({"hand": (fpr, tpr), "perfect": (np.array([0, 0, 1]), np.array([0, 1, 1]))}, "ROC")
    names = [trace.name for trace in figure.data]
    assert names == ["hand (AUC 0.812)", "perfect (AUC 1.000)", "chance"]
    assert list(figure.data[-1].x) == [0, 1] and list(figure.data[-1].y) == [0, 1]
    assert figure.layout.title.text == "ROC"
