"""Binary detection metrics, shared by training validation and the ``evaluate`` command.

Conventions: label 1 = fake, 0 = real; a score is a probability of fake or a logit (higher = more fake); a
sample is called fake when ``score >= threshold``. One implementation, so the numbers a checkpoint was selected
on and the numbers ``evaluate`` prints cannot drift apart.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# scikit-learn is imported where used: the scan and app paths never need it (see docs/speed.md). The ROC figure
# is drawn in ``views`` (metrics are numbers; figures belong to the display layer).

NAN = float("nan")


@dataclass
class BinaryMetrics:
    """Summary of a detector's scores against the ground truth.

    auc: area under the ROC curve (probability that a random fake outscores a random real; 0.5 = chance).
    ap: average precision of the "fake" class (area under the precision-recall curve, sklearn's step form).
    eer: equal error rate, where the false-positive rate (reals called fake) equals the false-negative rate
        (fakes called real); eer_threshold: the score at that point.
    accuracy: fraction of samples classified correctly when ``score >= threshold`` means fake.
    threshold: the threshold ``accuracy`` was measured at.
    tpr_at_fpr_1pct, tpr_at_fpr_5pct: fraction of fakes caught by the best threshold that calls at most 1 % / 5 %
        of reals fake.
    n_real, n_fake: how many samples of each class.
    The ranking metrics are NaN when only one class is present (they are undefined there).
    """

    auc: float
    ap: float
    eer: float
    eer_threshold: float
    accuracy: float
    threshold: float
    tpr_at_fpr_1pct: float
    tpr_at_fpr_5pct: float
    n_real: int
    n_fake: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict; NaN becomes None (JSON has no NaN)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def validate_inputs(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as a 1-D int array of 0/1 and scores as a 1-D float array; ValueError on anything unusable."""
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size == 0 or s.size == 0:
        raise ValueError("no samples: labels and scores are empty")
    if y.size != s.size:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{int(np.sum(~np.isfinite(s)))} score(s) are NaN or infinite")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    return y.astype(np.int64), s


def _one_class(y: np.ndarray) -> bool:
    return bool(y.min() == y.max())


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Every distinct score kept: the EER interpolation must see the real neighbours of the crossing.
    from sklearn.metrics import roc_curve

    return roc_curve(y, s, drop_intermediate=False)


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(EER, threshold at the EER); (NaN, NaN) with one class only.

    FPR - FNR rises monotonically along the ROC curve (thresholds descending); the EER is where it crosses zero,
    linearly interpolated between the two ROC points around the crossing. The threshold is interpolated the same
    way (it lies between the two neighbouring distinct scores; an exact crossing returns that point's score).
    """
    y, s = validate_inputs(labels, scores)
    return (NAN, NAN) if _one_class(y) else _eer_from_roc(*_roc(y, s))


def _eer_from_roc(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    gap = fpr - (1.0 - tpr)  # FPR - FNR: -1 at the first point (nothing called fake), +1 at the last
    i = int(np.argmax(gap >= 0.0))  # first point at or past the crossing; i >= 1 because gap[0] == -1
    if gap[i] == 0.0:
        return float(fpr[i]), float(thresholds[i])
    w = gap[i - 1] / (gap[i - 1] - gap[i])  # fraction of the way from point i-1 to point i
    eer = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    upper = thresholds[i - 1]
    # sklearn's first threshold is +inf (the "call nothing fake" point); interpolating towards it is meaningless.
    threshold = thresholds[i] if not np.isfinite(upper) else upper + w * (thresholds[i] - upper)
    return float(eer), float(threshold)


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """Largest TPR over the ROC points whose FPR <= ``max_fpr`` (NaN with one class only).

    Only ROC points are used (no linear interpolation between them), so the value is attained by an actual
    threshold rather than a randomised mix of two.
    """
    y, s = validate_inputs(labels, scores)
    if _one_class(y):
        return NAN
    fpr, tpr, _ = _roc(y, s)
    return _tpr_from_roc(fpr, tpr, max_fpr)


def _tpr_from_roc(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    return float(tpr[fpr <= max_fpr].max())  # fpr[0] == 0, so the selection is never empty


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> BinaryMetrics:
    """All of :class:`BinaryMetrics` for one set of scores; ``threshold`` is the accuracy's operating point
    (0.5 for probabilities, 0.0 for logits)."""
    y, s = validate_inputs(labels, scores)
    n_fake = int(y.sum())
    n_real = int(y.size - n_fake)
    accuracy = float(np.mean((s >= threshold).astype(np.int64) == y))
    if _one_class(y):
        # sklearn raises or warns here; undefined is the honest answer, and the counts still say why
        auc = ap = eer = eer_threshold = tpr_1 = tpr_5 = NAN
    else:
        from sklearn.metrics import average_precision_score, roc_auc_score

        auc = float(roc_auc_score(y, s))
        ap = float(average_precision_score(y, s))
        fpr, tpr, thresholds = _roc(y, s)
        eer, eer_threshold = _eer_from_roc(fpr, tpr, thresholds)
        tpr_1, tpr_5 = _tpr_from_roc(fpr, tpr, 0.01), _tpr_from_roc(fpr, tpr, 0.05)
    return BinaryMetrics(
        auc=auc,
        ap=ap,
        eer=eer,
        eer_threshold=eer_threshold,
        accuracy=accuracy,
        threshold=float(threshold),
        tpr_at_fpr_1pct=tpr_1,
        tpr_at_fpr_5pct=tpr_5,
        n_real=n_real,
        n_fake=n_fake,
    )


def roc_curve_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the ROC curve, collinear points dropped (for plotting).

    ``thresholds[0]`` is +inf (nothing called fake). ValueError with one class only: there is no curve.
    """
    y, s = validate_inputs(labels, scores)
    if _one_class(y):
        raise ValueError("ROC curve needs both real (0) and fake (1) samples")
    from sklearn.metrics import roc_curve

    return roc_curve(y, s)
