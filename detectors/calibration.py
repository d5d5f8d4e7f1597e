"""Turning scores into verdicts: a decision threshold with an "uncertain" band, and a logistic-regression ensemble.

Both are fitted on validation data (label 1 = fake, 0 = real; higher score = more fake). A score ``p`` reads as
fake when ``p >= decision``; inside ``[uncertain_low, uncertain_high)`` the verdict is "uncertain" instead, which
is how ``checkpoints.Thresholds.verdict`` reads the same three numbers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from detectors.metrics import equal_error_rate, validate_inputs


@dataclass
class Calibration:
    """Three thresholds on one detector's (or the ensemble's) score.

    decision: the equal-error-rate threshold on the validation data (false positives and false negatives
        balanced); ``p >= decision`` means fake.
    uncertain_low, uncertain_high: the band ``[uncertain_low, uncertain_high)`` around ``decision`` where the
        verdict is not reliable. At or above ``uncertain_high`` the validation precision of "fake" reached the
        target; below ``uncertain_low`` the validation negative predictive value ("real" is right) reached it.
    method: how the numbers were obtained, for the record.
    """

    decision: float
    uncertain_low: float
    uncertain_high: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Calibration":
        return cls(
            decision=float(data["decision"]),
            uncertain_low=float(data["uncertain_low"]),
            uncertain_high=float(data["uncertain_high"]),
            method=str(data.get("method", "")),
        )


def _precision_at_or_above(y: np.ndarray, s: np.ndarray, t: float) -> float:
    """Fraction of fakes among the samples with score >= t (NaN when there are none)."""
    chosen = s >= t
    return float(y[chosen].mean()) if chosen.any() else math.nan


def _npv_below(y: np.ndarray, s: np.ndarray, t: float) -> float:
    """Fraction of reals among the samples with score < t (NaN when there are none)."""
    chosen = s < t
    return float(1.0 - y[chosen].mean()) if chosen.any() else math.nan


def _upper_edge(y: np.ndarray, s: np.ndarray, decision: float, target: float) -> float:
    # Precision over {s >= t} only changes when t passes a score, so the decision and the distinct scores
    # above it are the only candidates; precision is not monotone in t, hence the scan.
    for t in np.concatenate(([decision], np.unique(s[s > decision]))):
        if _precision_at_or_above(y, s, t) >= target:
            return float(t)
    return float(s.max())


def _lower_edge(y: np.ndarray, s: np.ndarray, decision: float, target: float) -> float:
    # {s < t} changes only when t passes a score: candidates are the decision and the scores below it.
    for t in np.concatenate(([decision], np.unique(s[s < decision])[::-1])):
        if _npv_below(y, s, t) >= target:
            return float(t)
    return float(s.min())


def fit_thresholds(labels: np.ndarray, probabilities: np.ndarray, target_precision: float = 0.9) -> Calibration:
    """Calibrate a detector on validation data.

    decision: the threshold at the equal-error-rate point (FPR == FNR, balanced errors; see
        :func:`detectors.metrics.equal_error_rate`).
    uncertain_high: the smallest t >= decision with precision of "fake" among scores >= t at least
        ``target_precision``; the highest score when no such t exists.
    uncertain_low: the largest t <= decision with negative predictive value among scores < t at least
        ``target_precision``; the lowest score when no such t exists.
    So uncertain_low <= decision <= uncertain_high, and the band is empty when the decision itself already meets
    the target on both sides. Works on logits as well as probabilities. ValueError without both classes.
    """
    y, s = validate_inputs(labels, probabilities)
    if y.min() == y.max():
        raise ValueError("calibration needs both real (0) and fake (1) samples")
    _, decision = equal_error_rate(y, s)
    return Calibration(
        decision=float(decision),
        uncertain_low=_lower_edge(y, s, decision, target_precision),
        uncertain_high=_upper_edge(y, s, decision, target_precision),
        method=f"decision at EER; band edges where precision / NPV >= {target_precision:g} on validation data",
    )


MAX_FALSE_ALARMS = 0.05  # share of any real source's validation faces that may be called fake
MAX_MISSED = 0.10  # share of any fake family's validation faces that may be called real
MIN_SOURCE_SIZE = 20  # smaller groups are too few to estimate a 5 % share from


def threshold_above(scores: np.ndarray, share: float) -> float:
    """The lowest threshold t with at most ``share`` of ``scores`` at or above it."""
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    allowed = int(math.floor(share * len(s)))
    return float(np.nextafter(s[allowed], np.inf)) if allowed < len(s) else float(s[-1])


def threshold_below(scores: np.ndarray, share: float) -> float:
    """The highest threshold t with at most ``share`` of ``scores`` below it."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    allowed = int(math.floor(share * len(s)))
    return float(s[allowed]) if allowed < len(s) else float(s[-1])


def fit_guarded_thresholds(reals: dict[str, np.ndarray], fakes: dict[str, np.ndarray],
                           max_false_alarms: float = MAX_FALSE_ALARMS, max_missed: float = MAX_MISSED) -> Calibration:
    """Thresholds that do not cry wolf, fitted on validation scores grouped by where they come from.

    ``reals``: real source -> scores of its faces; ``fakes``: fake family -> scores of its faces.
    uncertain_high (= decision): the lowest threshold at which *every* real source has at most
        ``max_false_alarms`` of its faces at or above it: "fake" is said only above it.
    uncertain_low: the highest threshold at which *every* fake family has at most ``max_missed`` of its faces
        below it: "real" is said only below it. Where the detector cannot separate the two, the band between
        is wide and the verdict "uncertain"; never inverted (low <= high).
    Groups smaller than :data:`MIN_SOURCE_SIZE` are left out (unless every group is that small).
    """
    def usable(groups: dict[str, np.ndarray]) -> list[np.ndarray]:
        chosen = [np.asarray(s, dtype=np.float64) for s in groups.values() if len(s) >= MIN_SOURCE_SIZE]
        return chosen or [np.asarray(s, dtype=np.float64) for s in groups.values() if len(s)]

    real_groups, fake_groups = usable(reals), usable(fakes)
    if not real_groups or not fake_groups:
        raise ValueError("calibration needs real and fake validation scores")
    high = max(threshold_above(s, max_false_alarms) for s in real_groups)
    low = min(min(threshold_below(s, max_missed) for s in fake_groups), high)
    return Calibration(decision=high, uncertain_low=low, uncertain_high=high,
                       method=f"fake at or above the threshold: <= {max_false_alarms:.0%} of every real source's validation "
                              f"faces; real below the band's low edge: <= {max_missed:.0%} of every fake family's")


def capped_verdict(verdict: str, member_verdicts: list[str]) -> str:
    """The ensemble's verdict, never more confident than its members: "fake" or "real" only when at least
    half of the detectors that scored say so too; otherwise "uncertain"."""
    if verdict in ("fake", "real") and member_verdicts and 2 * member_verdicts.count(verdict) < len(member_verdicts):
        return "uncertain"
    return verdict


@dataclass
class EnsembleRule:
    """Logistic regression over the detectors' logits: p(fake) = sigmoid(intercept + sum_i coefficients[i] * x_i).

    names: the detectors, in the order of ``coefficients`` and ``means``.
    coefficients, intercept: the fitted weights (per logit unit) and bias.
    calibration: thresholds fitted on the ensemble's own validation probabilities.
    means: each detector's mean validation logit; it stands in for a detector that gave no score, so the rule
        still answers with part of the detectors.
    """

    names: list[str]
    coefficients: list[float]
    intercept: float
    calibration: Calibration
    means: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "coefficients": [float(c) for c in self.coefficients],
            "intercept": float(self.intercept),
            "means": [float(m) for m in self.means],
            "calibration": self.calibration.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnsembleRule":
        return cls(
            names=[str(n) for n in data["names"]],
            coefficients=[float(c) for c in data["coefficients"]],
            intercept=float(data["intercept"]),
            calibration=Calibration.from_dict(data["calibration"]),
            means=[float(m) for m in data["means"]],
        )

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Probability of fake per row of an N x D logit matrix (columns in ``names`` order; NaN = missing)."""
        x = np.asarray(logits, dtype=np.float64).reshape(-1, len(self.names))
        x = np.where(np.isfinite(x), x, np.asarray(self.means))
        return expit(self.intercept + x @ np.asarray(self.coefficients))

    def probability(self, logits: dict[str, float | None]) -> float | None:
        """Probability of fake from whichever detectors answered; None when none of ``names`` did.

        A detector absent from ``logits``, or given as None / NaN, counts as its mean validation logit.
        Names the rule does not know are ignored.
        """
        row = [logits.get(name) for name in self.names]
        row = [math.nan if v is None or not math.isfinite(v) else float(v) for v in row]
        if all(math.isnan(v) for v in row):
            return None
        return float(self.probabilities(np.array([row]))[0])


def fit_nonnegative_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0,
                             sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Minimise ``0.5 |w|^2 + c * sum(weight * log-loss)`` over ``w >= 0`` and a free intercept (L-BFGS-B).

    The objective is sklearn's ``LogisticRegression(C=c)`` (with ``sample_weight``); with no active bound the
    result is the same fit.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    d = x.shape[1]

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:d], params[d]
        z = x @ w + b
        loss = (weight * np.logaddexp(0.0, np.where(y > 0, -z, z))).sum()  # -log p(y | z), without overflow
        residual = weight * (expit(z) - y)  # d loss / d z
        gradient = np.append(w + c * (x.T @ residual), c * residual.sum())
        return 0.5 * w @ w + c * loss, gradient

    bounds = [(0.0, None)] * d + [(None, None)]
    result = minimize(objective, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 1000, "gtol": 1e-8})
    return result.x[:d], float(result.x[d])


def fit_ensemble(names: list[str], logits: np.ndarray, labels: np.ndarray,
                 groups: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None,
                 weights: np.ndarray | None = None) -> EnsembleRule:
    """Fit the ensemble on validation logits (N x D, columns in ``names`` order) and calibrate it.

    L2-regularised logistic regression on the raw logits (sklearn's ``LogisticRegression(C=1.0)`` objective)
    with every coefficient held >= 0 (:func:`fit_nonnegative_logistic`): a detector's logit is evidence of
    "fake", so the rule may weigh a detector down to zero but never read its "fake" as evidence of "real". An
    unconstrained fit did exactly that to the near-chance SpecXNet (coefficient -0.25 on validation), a
    suppressor fitted to validation quirks that would not transfer to other fakes and would contradict the
    side-by-side verdicts. NaN entries (a detector that gave no score) are replaced by that column's mean,
    exactly as :meth:`EnsembleRule.probability` does at inference. ``weights`` (one per row) weigh the log-loss,
    so that every held-out set counts alike however many faces it holds. The calibration is on the fitted
    rule's own probabilities for the same data: :func:`fit_guarded_thresholds` when ``groups`` gives the row
    indices of each real source and each fake family, else :func:`fit_thresholds`.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"logits must be N x {len(names)} (one column per name), got shape {x.shape}")
    y, _ = validate_inputs(labels, np.zeros(len(np.asarray(labels).ravel())))
    if y.size != x.shape[0]:
        raise ValueError(f"labels ({y.size}) and logit rows ({x.shape[0]}) differ in number")
    if y.min() == y.max():
        raise ValueError("the ensemble needs both real (0) and fake (1) samples")
    finite = np.isfinite(x)
    if not finite.any(axis=0).all():
        raise ValueError("every detector needs at least one finite logit")
    means = np.array([x[finite[:, j], j].mean() for j in range(x.shape[1])])
    coefficients, intercept = fit_nonnegative_logistic(np.where(finite, x, means), y, sample_weight=weights)
    rule = EnsembleRule(
        names=list(names),
        coefficients=[float(c) for c in coefficients],
        intercept=float(intercept),
        calibration=Calibration(math.nan, math.nan, math.nan, ""),  # replaced just below
        means=[float(m) for m in means],
    )
    probabilities = rule.probabilities(x)
    if groups is None:
        rule.calibration = fit_thresholds(y, probabilities)
    else:
        reals, fakes = groups
        rule.calibration = fit_guarded_thresholds({k: probabilities[v] for k, v in reals.items()},
                                                  {k: probabilities[v] for k, v in fakes.items()})
    return rule
