"""detectors.calibration: thresholds with an uncertain band, and the logistic-regression ensemble."""
import json
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from detectors.calibration import Calibration, EnsembleRule, fit_ensemble, fit_nonnegative_logistic, fit_thresholds
from detectors.metrics import binary_metrics

# Ranked: .9F .8F .7R .6F .5R .3F .2R .1R (EER 0.25 exactly at 0.6)
HAND_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])
HAND_SCORES = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1])


def _gaussians(n: int = 2000, separation: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n)
    logits = np.concatenate([rng.normal(-separation / 2, 1.0, n), rng.normal(separation / 2, 1.0, n)])
    return labels, 1.0 / (1.0 + np.exp(-logits))


def test_hand_computed_thresholds():
    c = fit_thresholds(HAND_LABELS, HAND_SCORES, target_precision=0.9)
    assert c.decision == pytest.approx(0.6)
    # >= .6: 3/4 fake; >= .7: 2/3; >= .8: 2/2 -> first t reaching 0.9 is .8
    assert c.uncertain_high == pytest.approx(0.8)
    # < .6: 3/4 real; < .5: 2/3; < .3: 2/2 -> largest t reaching 0.9 is .3
    assert c.uncertain_low == pytest.approx(0.3)


def test_band_contains_decision_and_meets_target_on_fitted_data():
    labels, p = _gaussians()
    for target in (0.8, 0.9, 0.95):
        c = fit_thresholds(labels, p, target_precision=target)
        assert c.uncertain_low <= c.decision <= c.uncertain_high
        # EER here is 1 - Phi(1) ~ 0.16, so precision at the decision is ~0.84: only a stricter target needs a band
        assert (c.uncertain_low < c.uncertain_high) == (target > 0.85)
        assert labels[p >= c.uncertain_high].mean() >= target  # precision of "fake" above the band
        assert 1.0 - labels[p < c.uncertain_low].mean() >= target  # NPV below the band
    # the decision balances the errors
    fpr = np.mean(p[labels == 0] >= c.decision)
    fnr = np.mean(p[labels == 1] < c.decision)
    assert fpr == pytest.approx(fnr, abs=0.01)


def test_higher_target_widens_band():
    labels, p = _gaussians()
    loose, strict = fit_thresholds(labels, p, 0.8), fit_thresholds(labels, p, 0.97)
    assert strict.uncertain_high >= loose.uncertain_high and strict.uncertain_low <= loose.uncertain_low


def test_unreachable_target_falls_back_to_extremes():
    # the top and bottom scores belong to the wrong class, so precision / NPV 1.0 is never reached
    labels = np.array([0, 1, 1, 0, 0, 1])
    p = np.array([0.95, 0.8, 0.7, 0.3, 0.2, 0.05])
    c = fit_thresholds(labels, p, target_precision=1.0)
    assert c.uncertain_high == pytest.approx(0.95)
    assert c.uncertain_low == pytest.approx(0.05)


def test_thresholds_need_both_classes():
    with pytest.raises(ValueError, match="both"):
        fit_thresholds(np.zeros(5), np.linspace(0, 1, 5))


def test_calibration_round_trip():
    c = fit_thresholds(HAND_LABELS, HAND_SCORES)
    assert Calibration.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def _detector_logits(n: int = 3000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    # offsets keep the training means away from 0, so "missing = mean" differs from "missing = 0"
    informative = rng.normal(1.0, 1.0, n) + 3.0 * (labels - 0.5)
    noise = rng.normal(3.0, 1.0, n)
    return np.column_stack([informative, noise]), labels


def test_ensemble_weights_the_informative_detector():
    logits, labels = _detector_logits()
    rule = fit_ensemble(["good", "noise"], logits, labels)
    assert abs(rule.coefficients[0]) > abs(rule.coefficients[1])
    assert rule.coefficients[0] > 0  # higher logit = more fake, as for the detector itself
    ensemble_auc = binary_metrics(labels, rule.probabilities(logits)).auc
    assert ensemble_auc >= binary_metrics(labels, logits[:, 0]).auc - 0.01
    c = rule.calibration
    assert c.uncertain_low <= c.decision <= c.uncertain_high


def test_nonnegative_fit_is_sklearns_fit_when_no_bound_is_active():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 2000)
    logits = np.column_stack([rng.normal(0, 1, 2000) + 2.0 * labels, rng.normal(1, 1, 2000) + 0.7 * labels])
    coefficients, intercept = fit_nonnegative_logistic(logits, labels)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(logits, labels)
    assert np.all(reference.coef_[0] > 0)  # so no bound is active
    np.testing.assert_allclose(coefficients, reference.coef_[0], rtol=1e-4)
    assert intercept == pytest.approx(reference.intercept_[0], rel=1e-4)


def test_ensemble_never_inverts_a_detector():
    # A suppressor: "nuisance" is noise that also leaks into the good detector's logit, so an unconstrained fit
    # gives "inverted" (= nuisance) a negative weight to cancel it.
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 3000)
    nuisance = rng.normal(0, 1, 3000)
    logits = np.column_stack([2.0 * labels + 1.5 * nuisance + rng.normal(0, 0.5, 3000), nuisance])
    assert LogisticRegression(C=1.0).fit(logits, labels).coef_[0][1] < -0.5
    rule = fit_ensemble(["good", "inverted"], logits, labels)
    assert rule.coefficients[0] > 0
    assert rule.coefficients[1] == 0.0
    assert rule.probability({"good": 1.0, "inverted": 3.0}) == pytest.approx(rule.probability({"good": 1.0, "inverted": -3.0}))


def test_ensemble_probability_matches_batch_and_handles_missing():
    logits, labels = _detector_logits()
    rule = fit_ensemble(["good", "noise"], logits, labels)
    row = {"good": float(logits[0, 0]), "noise": float(logits[0, 1])}
    assert rule.probability(row) == pytest.approx(float(rule.probabilities(logits[:1])[0]))
    # a missing detector counts as its training mean, whether absent, None or NaN
    with_mean = rule.probability({"good": 2.0, "noise": rule.means[1]})
    assert rule.probability({"good": 2.0}) == pytest.approx(with_mean)
    assert rule.probability({"good": 2.0, "noise": None}) == pytest.approx(with_mean)
    assert rule.probability({"good": 2.0, "noise": math.nan}) == pytest.approx(with_mean)
    assert rule.probability({"good": 2.0, "other": 9.0}) == pytest.approx(with_mean)  # unknown names ignored
    assert rule.probability({"noise": 0.5}) == pytest.approx(rule.probability({"good": rule.means[0], "noise": 0.5}))
    assert rule.probability({"good": 3.0}) > rule.probability({"good": -3.0})
    assert rule.probability({}) is None
    assert rule.probability({"good": None, "noise": None}) is None
    assert rule.means == pytest.approx(list(logits.mean(axis=0)))


def test_ensemble_round_trip():
    logits, labels = _detector_logits(500)
    rule = fit_ensemble(["good", "noise"], logits, labels)
    again = EnsembleRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert again == rule
    assert again.probability({"good": 1.0}) == rule.probability({"good": 1.0})


def test_ensemble_fits_with_missing_training_logits():
    logits, labels = _detector_logits(500)
    logits[::7, 1] = np.nan
    rule = fit_ensemble(["good", "noise"], logits, labels)
    assert rule.means[1] == pytest.approx(np.nanmean(logits[:, 1]))
    assert np.all(np.isfinite(rule.probabilities(logits)))


def test_ensemble_rejects_bad_shapes():
    logits, labels = _detector_logits(100)
    with pytest.raises(ValueError, match="N x 3"):
        fit_ensemble(["a", "b", "c"], logits, labels)
    with pytest.raises(ValueError, match="differ"):
        fit_ensemble(["a", "b"], logits, labels[:-1])


# -- thresholds that do not cry wolf ----------------------------------------------------------------------------

def test_the_edges_count_what_lies_beyond_them():
    from detectors.calibration import threshold_above, threshold_below

    scores = np.arange(100) / 100
    high = threshold_above(scores, 0.05)
    assert (scores >= high).sum() == 5 and (scores >= high - 0.011).sum() > 5  # the lowest such threshold
    low = threshold_below(scores, 0.10)
    assert (scores < low).sum() == 10 and (scores < low + 0.011).sum() > 10  # the highest such threshold


def test_guarded_thresholds_keep_every_real_sources_false_alarms_under_five_percent():
    from detectors.calibration import fit_guarded_thresholds
    from detectors.checkpoints import Thresholds

    rng = np.random.default_rng(0)
    reals = {"soft photos": rng.normal(0.2, 0.1, 400), "sharp photos": rng.normal(0.5, 0.1, 300), "tiny": rng.normal(0.9, 0.01, 5)}
    fakes = {"gan": rng.normal(0.8, 0.1, 300), "diffusion": rng.normal(0.6, 0.15, 200)}
    c = fit_guarded_thresholds(reals, fakes)
    verdict = Thresholds(c.decision, c.uncertain_low, c.uncertain_high).verdict
    for name in ("soft photos", "sharp photos"):  # the hardest source sets the threshold, not the pooled reals
        assert np.mean([verdict(p) == "fake" for p in reals[name]]) <= 0.05
    assert np.mean([verdict(p) == "fake" for p in reals["sharp photos"]]) > 0.03  # and no higher than it needs
    for name, scores in fakes.items():  # "real" is said of at most 10 % of any family's fakes
        assert np.mean([verdict(p) == "real" for p in scores]) <= 0.10
    assert c.uncertain_low <= c.decision == c.uncertain_high


def test_a_detector_that_cannot_separate_says_uncertain_not_real_or_fake():
    from detectors.calibration import fit_guarded_thresholds

    rng = np.random.default_rng(1)
    same = {"reals": rng.uniform(0, 1, 500)}, {"fakes": rng.uniform(0, 1, 500)}
    c = fit_guarded_thresholds(*same)
    assert c.uncertain_high > 0.9 and c.uncertain_low < 0.15  # a wide band: mostly "uncertain"
    inverted = {"reals": rng.normal(0.8, 0.05, 500)}, {"fakes": rng.normal(0.2, 0.05, 500)}
    c = fit_guarded_thresholds(*inverted)
    assert c.uncertain_low <= c.uncertain_high  # never an inverted band


def test_weighted_fit_is_sklearns_weighted_fit():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 1500)
    logits = np.column_stack([rng.normal(0, 1, 1500) + 2.0 * labels, rng.normal(0, 1, 1500) + 1.0 * labels])
    weights = rng.uniform(0.2, 3.0, 1500)
    coefficients, intercept = fit_nonnegative_logistic(logits, labels, sample_weight=weights)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(logits, labels, sample_weight=weights)
    np.testing.assert_allclose(coefficients, reference.coef_[0], rtol=1e-4)
    assert intercept == pytest.approx(reference.intercept_[0], rel=1e-3, abs=1e-4)


def test_every_held_out_set_weighs_alike_in_the_ensemble_fit():
    from detectors.training.calibrate import set_weights
    from detectors.training.heldout import HeldOut

    labels = np.array([0] * 60 + [1] * 30 + [1] * 300)
    # "small": 60 reals + 30 fakes; "big": the same 60 reals + 300 fakes; reals of one source are not a set
    held = HeldOut(np.zeros((len(labels), 1, 1, 3), np.uint8), labels, np.array(["x"] * len(labels)),
                   {"small": np.arange(0, 90), "big": np.r_[np.arange(0, 60), np.arange(90, 390)], "real:x": np.arange(60)})
    weights = set_weights(held)
    unit = weights[60] * 90  # each face of a set gets 1 / (the set's size), summed over the sets it is in
    np.testing.assert_allclose(weights[60:90], unit / 90)
    np.testing.assert_allclose(weights[90:], unit / 360)
    np.testing.assert_allclose(weights[:60], unit * (1 / 90 + 1 / 360))
    assert np.isclose(weights.mean(), 1.0)
