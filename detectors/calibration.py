"""Turning scores into verdicts: a decision threshold with an "uncertain" band, and a logistic-regression ensemble.

Both are fitted on validation data (label 1 = fake, 0 = real; higher score = more fake). A score ``p`` reads as
fake when ``p >= decision``; inside ``[uncertain_low, uncertain_high)`` the verdict is "uncertain" instead
(:meth:`Thresholds.verdict`, the one thresholds type: a checkpoint's ``config.json`` and the ensemble rule hold
one each).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from detectors.metrics import equal_error_rate, validate_inputs


def expit(x):
    """1 / (1 + e^-x), without overflow warnings: scipy.special's, whose import took half a second of every start."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=np.float64)))


def logit(p):
    """log(p / (1 - p)), the inverse of :func:`expit`."""
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Thresholds:
    """Three thresholds on one detector's (or the ensemble's) probability of fake, and how they were obtained.

    decision: the threshold fitted on validation data (e.g. at the equal error rate); ``p >= decision`` means fake.
    uncertain_low, uncertain_high: the band ``[uncertain_low, uncertain_high)`` around ``decision`` where the
        verdict is not reliable. At or above ``uncertain_high`` the validation precision of "fake" reached the
        target; below ``uncertain_low`` the validation negative predictive value ("real" is right) reached it.
    method: how the numbers were obtained, for the record (the ensemble rule keeps it; a checkpoint's
        ``config.json`` has none, and is written without the key).
    """

    decision: float = 0.5
    uncertain_low: float = 0.5
    uncertain_high: float = 0.5
    method: str = ""

    def verdict(self, probability: float) -> str:
        if self.uncertain_low <= probability < self.uncertain_high:
            return "uncertain"
        return "fake" if probability >= self.decision else "real"

    def to_dict(self) -> dict[str, Any]:
        numbers = {"decision": self.decision, "uncertain_low": self.uncertain_low, "uncertain_high": self.uncertain_high}
        return {**numbers, "method": self.method} if self.method else numbers

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Thresholds":
        return cls(
            decision=float(data["decision"]),
            uncertain_low=float(data["uncertain_low"]),
            uncertain_high=float(data["uncertain_high"]),
            method=str(data.get("method", "")),
        )


Calibration = Thresholds  # the name the fitting functions and the training code use


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
# A member's verdict (pooled rule): a source may exceed the pooled share up to this factor, no further (1.5:
# measured against 2.0 and the worst-source rule on the test splits, see docs/calibration.md).
SOURCE_SLACK = 1.5


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


def _usable(groups: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Groups with at least :data:`MIN_SOURCE_SIZE` scores (every non-empty group when none has that many)."""
    chosen = [np.asarray(s, dtype=np.float64) for s in groups.values() if len(s) >= MIN_SOURCE_SIZE]
    return chosen or [np.asarray(s, dtype=np.float64) for s in groups.values() if len(s)]


def _pooled_above(groups: list[np.ndarray], share: float) -> float:
    """The lowest t at which the groups' mean share of scores >= t is at most ``share`` (each group counts alike,
    however many scores it holds)."""
    candidates = np.unique(np.concatenate(groups))
    shares = np.mean([1.0 - np.searchsorted(np.sort(g), candidates, side="left") / len(g) for g in groups], axis=0)
    fine = candidates[shares <= share]
    return float(np.nextafter(candidates.max(), np.inf)) if not len(fine) else float(fine.min())


def _pooled_below(groups: list[np.ndarray], share: float) -> float:
    """The highest t at which the groups' mean share of scores < t is at most ``share``."""
    candidates = np.unique(np.concatenate(groups))
    shares = np.mean([np.searchsorted(np.sort(g), candidates, side="left") / len(g) for g in groups], axis=0)
    fine = candidates[shares <= share]
    return float(candidates.min()) if not len(fine) else float(fine.max())


def fit_guarded_thresholds(reals: dict[str, np.ndarray], fakes: dict[str, np.ndarray],
                           max_false_alarms: float = MAX_FALSE_ALARMS, max_missed: float = MAX_MISSED,
                           rule: str = "worst") -> Calibration:
    """Thresholds that do not cry wolf, fitted on validation scores grouped by where they come from.

    ``reals``: real source -> scores of its faces; ``fakes``: fake family -> scores of its faces.

    ``rule="worst"``: "fake" at or above the lowest threshold at which *every* real source has at most
    ``max_false_alarms`` of its faces at or above it; "real" below the highest at which every fake family has at
    most ``max_missed`` of its faces below it. One odd source decides: a member whose scores run high on one
    real source never says "fake" anywhere (MD-CSD's edge sat at 0.998).

    ``rule="pooled"``: the same shares over all sources together, each source counting alike, and no source
    above :data:`SOURCE_SLACK` times the share: an odd source widens the band only as far as its own guard
    needs, and the member still calls the fakes it is sure of fake. Used for the members' own verdicts; the
    ensemble's "likely" levels keep the worst-source guard (:func:`fit_evidence_levels`).

    Where the detector cannot separate the classes the band between is wide; never inverted (low <= high).
    Groups smaller than :data:`MIN_SOURCE_SIZE` are left out (unless every group is that small).
    """
    real_groups, fake_groups = _usable(reals), _usable(fakes)
    if not real_groups or not fake_groups:
        raise ValueError("calibration needs real and fake validation scores")
    worst_high = max(threshold_above(s, max_false_alarms) for s in real_groups)
    worst_low = min(threshold_below(s, max_missed) for s in fake_groups)
    if rule == "worst":
        high, low = worst_high, worst_low
        method = (f"fake at or above the threshold: <= {max_false_alarms:.0%} of every real source's validation "
                  f"faces; real below the band's low edge: <= {max_missed:.0%} of every fake family's")
    elif rule == "pooled":
        high = max(_pooled_above(real_groups, max_false_alarms),
                   max(threshold_above(s, SOURCE_SLACK * max_false_alarms) for s in real_groups))
        low = min(_pooled_below(fake_groups, max_missed),
                  min(threshold_below(s, SOURCE_SLACK * max_missed) for s in fake_groups))
        method = (f"fake at or above the threshold: <= {max_false_alarms:.0%} of the validation reals of all sources "
                  f"together (each source alike) and <= {SOURCE_SLACK * max_false_alarms:.1%} of any one source's; real "
                  f"below the low edge: <= {max_missed:.0%} of all fake families' faces together and "
                  f"<= {SOURCE_SLACK * max_missed:.1%} of any one family's")
    else:
        raise ValueError(f"unknown threshold rule {rule!r}: worst or pooled")
    return Calibration(decision=high, uncertain_low=min(low, high), uncertain_high=high, method=method)


# -- evidence levels ---------------------------------------------------------------------------------------
LEVELS = ("likely fake", "leaning fake", "uncertain", "leaning real", "likely real")
LEVEL_VERDICTS = {"likely fake": "fake", "leaning fake": "uncertain", "uncertain": "uncertain",
                  "leaning real": "uncertain", "likely real": "real"}  # the three-way verdict kept beside the level
# Where a rule has no levels (an ensemble fitted before them, or the majority vote): the verdict's own level.
VERDICT_LEVELS = {"fake": "likely fake", "real": "likely real", "uncertain": "uncertain"}
LEAN_PRECISION = 0.75  # a lean must have been right at least this often on validation, at even odds
CORROBORATION = 2  # detectors whose own verdict must be "fake" for "likely fake" (its effect measured: docs/calibration.md)


def level_verdict(level: str | None) -> str | None:
    return None if level is None else LEVEL_VERDICTS.get(level, level)


def _balanced_fake_share(sets: dict[str, tuple[np.ndarray, np.ndarray]], chosen) -> float:
    """Share of fakes among the chosen faces when every set counts alike and each holds as many reals as fakes
    (even odds): what a level means, independent of how many faces each validation set happens to hold.
    ``chosen(scores) -> bool mask``. NaN when no face is chosen."""
    fake = real = 0.0
    for reals, fakes in sets.values():
        fake += chosen(fakes).mean() if len(fakes) else 0.0
        real += chosen(reals).mean() if len(reals) else 0.0
    return fake / (fake + real) if fake + real > 0 else math.nan


def _band_shares(sets, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """For each band [lows[k], highs[k]): the even-odds share of fakes among the faces in it (NaN if empty)."""
    fake = np.zeros(len(lows))
    real = np.zeros(len(lows))
    for reals, fakes in sets.values():
        for scores, total in ((np.sort(fakes), fake), (np.sort(reals), real)):
            if len(scores):
                total += (np.searchsorted(scores, highs, "left") - np.searchsorted(scores, lows, "left")) / len(scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        return fake / (fake + real)


def _lean_edge(sets, side: str, likely: float, other_likely: float, target: float) -> float:
    """fake side: the lowest t (above ``other_likely``) at which the faces in [t, ``likely``) were fake at least
    ``target`` of the time (even odds); real side: the highest t at which those in [``likely``, t) were real that
    often. NaN when no band reaches the target."""
    scores = np.unique(np.concatenate([np.concatenate(pair) for pair in sets.values()]))
    if side == "fake":
        candidates = scores[(scores >= other_likely) & (scores < likely)]
        shares = _band_shares(sets, candidates, np.full(len(candidates), likely))
        fine = candidates[shares >= target]
        return float(fine.min()) if len(fine) else math.nan
    candidates = np.nextafter(scores[(scores >= likely) & (scores < other_likely)], np.inf)  # t just above a score
    shares = _band_shares(sets, np.full(len(candidates), likely), candidates)
    fine = candidates[1.0 - shares >= target]
    return float(fine.max()) if len(fine) else math.nan


@dataclass
class EvidenceLevels:
    """Five levels on the ensemble's probability of fake, each with what it meant on validation.

    edges: ``likely_fake`` (at or above: likely fake), ``leaning_fake``, ``leaning_real`` (below: leaning real),
        ``likely_real`` (below: likely real); likely_real <= leaning_real <= leaning_fake <= likely_fake. A level
        whose two edges coincide is empty.
    meaning: per level, on the validation sets: ``fake_share`` (share of fakes among the faces at that level,
        every set counting alike at even odds of real and fake), ``by_set`` (the same within each set),
        ``faces`` (validation faces at that level).
    method: how the edges were fitted, for the record.
    corroboration: "likely fake" also needs this many detectors whose own verdict is "fake"; with fewer the face
        is "leaning fake" (one detector alone never makes the strongest claim; a false alarm costs most).
    """

    likely_fake: float
    leaning_fake: float
    leaning_real: float
    likely_real: float
    meaning: dict[str, dict[str, Any]]
    method: str
    corroboration: int = CORROBORATION

    def level(self, probability: float | None, fake_votes: int | None = None) -> str | None:
        """The level of an ensemble probability; ``fake_votes`` (detectors saying "fake" on their own) applies
        the corroboration rule (None: the probability alone)."""
        if probability is None or not math.isfinite(probability):
            return None
        if probability >= self.likely_fake:
            return "likely fake" if fake_votes is None or fake_votes >= self.corroboration else "leaning fake"
        if probability >= self.leaning_fake:
            return "leaning fake"
        if probability < self.likely_real:
            return "likely real"
        if probability < self.leaning_real:
            return "leaning real"
        return "uncertain"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvidenceLevels":
        return cls(**{k: (float(data[k]) if k not in ("meaning", "method") else data[k]) for k in
                      ("likely_fake", "leaning_fake", "leaning_real", "likely_real", "meaning", "method")},
                   corroboration=int(data.get("corroboration", 0)))


def level_meanings(sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """What each level meant on ``sets`` (set -> (levels of its reals, levels of its fakes)): see
    :class:`EvidenceLevels`."""
    out = {}
    for level in LEVELS:
        def at(levels, level=level):
            return np.asarray(levels) == level

        share = _balanced_fake_share(sets, at)
        by_set = {name: _balanced_fake_share({name: pair}, at) for name, pair in sets.items()}
        out[level] = {"fake_share": None if math.isnan(share) else round(share, 4),
                      "by_set": {k: None if math.isnan(v) else round(v, 4) for k, v in by_set.items()},
                      "faces": int(sum(at(np.concatenate(pair)).sum() for pair in sets.values()))}
    return out


def fit_evidence_levels(reals: dict[str, np.ndarray], fakes: dict[str, np.ndarray],
                        sets: dict[str, tuple[np.ndarray, np.ndarray]], max_false_alarms: float = MAX_FALSE_ALARMS,
                        max_missed: float = MAX_MISSED, lean_precision: float = LEAN_PRECISION,
                        votes: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> EvidenceLevels:
    """The five levels' edges, fitted on validation scores of the ensemble.

    ``reals``: real source -> scores; ``fakes``: fake family -> scores; ``sets``: held-out set -> (real scores,
    fake scores), the fakes of each set against the reals that look like them; ``votes``: the same layout with
    each face's number of detectors saying "fake" on their own (the corroboration rule; None: not applied).

    - likely fake: the worst-source guard: at most ``max_false_alarms`` of *every* real source's faces at or above.
    - likely real: at most ``max_missed`` of every fake family's faces below.
    - leaning fake / leaning real: the widest band next to its "likely" level whose faces were fake (real) at
      least ``lean_precision`` of the time, every set counting alike at even odds; empty when no such band exists.
      Where the two leans would overlap, the real lean gives way (a false alarm costs more than a missed fake).
    """
    guard = fit_guarded_thresholds(reals, fakes, max_false_alarms, max_missed, rule="worst")
    likely_fake, likely_real = guard.uncertain_high, guard.uncertain_low
    lean_fake = _lean_edge(sets, "fake", likely_fake, likely_real, lean_precision)
    lean_real = _lean_edge(sets, "real", likely_real, likely_fake, lean_precision)
    lean_fake = likely_fake if math.isnan(lean_fake) else lean_fake
    lean_real = likely_real if math.isnan(lean_real) else min(lean_real, lean_fake)
    levels = EvidenceLevels(likely_fake, lean_fake, lean_real, likely_real, {}, corroboration=CORROBORATION if votes else 0, method=(
        f"likely fake at or above {likely_fake:.3f}: <= {max_false_alarms:.0%} of every real source's validation faces; "
        f"likely real below {likely_real:.3f}: <= {max_missed:.0%} of every fake family's; leaning fake from "
        f"{lean_fake:.3f} and leaning real below {lean_real:.3f}: right >= {lean_precision:.0%} of the time on "
        f"validation (every set alike, even odds)" + (f"; likely fake also needs {CORROBORATION} detectors saying fake on "
                                                      f"their own, else leaning fake" if votes else "")))

    def face_levels(scores, counts):
        return np.array([levels.level(float(p), None if counts is None else int(c))
                         for p, c in zip(scores, counts if counts is not None else [None] * len(scores))], dtype=object)

    levels.meaning = level_meanings({name: tuple(face_levels(scores, None if votes is None else votes[name][k])
                                                 for k, scores in enumerate(pair)) for name, pair in sets.items()})
    return levels


def clip_level(clip: str | None, frames: list[str | None]) -> str | None:
    """A clip's level: that of its aggregated probability (``clip``), moved one step towards "uncertain" when
    fewer than half of its frames with a face are on the same side (leaning or likely): frames that disagree
    do not make a decisive clip."""
    if clip is None or clip == "uncertain":
        return clip
    seen = [f for f in frames if f is not None]
    side = clip.split()[-1]
    agreeing = sum(1 for f in seen if f != "uncertain" and f.split()[-1] == side)
    if seen and 2 * agreeing >= len(seen):
        return clip
    return {"likely fake": "leaning fake", "leaning fake": "uncertain",
            "likely real": "leaning real", "leaning real": "uncertain"}[clip]


@dataclass
class EnsembleRule:
    """Logistic regression over the detectors' logits: p(fake) = sigmoid(intercept + sum_i coefficients[i] * x_i).

    names: the detectors, in the order of ``coefficients`` and ``means``.
    coefficients, intercept: the fitted weights (per logit unit) and bias.
    calibration: thresholds fitted on the ensemble's own validation probabilities.
    means: each detector's mean validation logit; it stands in for a detector that gave no score, so the rule
        still answers with part of the detectors.
    levels: the five evidence levels on the rule's probability and what each meant on validation (None for a
        rule fitted without held-out sets: then only the three-way verdict of ``calibration``).
    clip: how a clip's frames make one clip score and that score's levels, fitted on clips (:class:`ClipRule`,
        the optional ``clip`` field of ``ensemble.json``; None: a clip takes the level of its frames' mean).
    """

    names: list[str]
    coefficients: list[float]
    intercept: float
    calibration: Calibration
    means: list[float]
    levels: EvidenceLevels | None = None
    clip: "ClipRule | None" = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "coefficients": [float(c) for c in self.coefficients],
            "intercept": float(self.intercept),
            "means": [float(m) for m in self.means],
            "calibration": self.calibration.to_dict(),
            **({"levels": self.levels.to_dict()} if self.levels is not None else {}),
            **({"clip": self.clip.to_dict()} if self.clip is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnsembleRule":
        return cls(
            names=[str(n) for n in data["names"]],
            coefficients=[float(c) for c in data["coefficients"]],
            intercept=float(data["intercept"]),
            calibration=Calibration.from_dict(data["calibration"]),
            means=[float(m) for m in data["means"]],
            levels=EvidenceLevels.from_dict(data["levels"]) if data.get("levels") else None,
            clip=ClipRule.from_dict(data["clip"]) if data.get("clip") else None,
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
    from scipy.optimize import minimize  # only when fitting: its import is a slow part of start-up

    result = minimize(objective, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 1000, "gtol": 1e-8})
    return result.x[:d], float(result.x[d])


def fit_ensemble(names: list[str], logits: np.ndarray, labels: np.ndarray,
                 groups: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None,
                 weights: np.ndarray | None = None, sets: dict[str, np.ndarray] | None = None,
                 fake_votes: np.ndarray | None = None) -> EnsembleRule:
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
    indices of each real source and each fake family, else :func:`fit_thresholds`; with ``groups`` and ``sets``
    (held-out set -> row indices of its reals and fakes) also the evidence levels (:func:`fit_evidence_levels`),
    whose "likely" edges are the guarded thresholds; ``fake_votes`` (per row, the detectors whose own verdict is
    "fake") applies the corroboration rule to the levels' measured meanings.
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
        by_real = {k: probabilities[v] for k, v in reals.items()}
        by_fake = {k: probabilities[v] for k, v in fakes.items()}
        rule.calibration = fit_guarded_thresholds(by_real, by_fake)
        if sets is not None:
            pairs = {k: (probabilities[v][y[v] == 0], probabilities[v][y[v] == 1]) for k, v in sets.items()}
            votes = None if fake_votes is None else {k: (fake_votes[v][y[v] == 0], fake_votes[v][y[v] == 1]) for k, v in sets.items()}
            rule.levels = fit_evidence_levels(by_real, by_fake, pairs, votes=votes)
    return rule


# -- clip rules: one level for a clip, fitted and given meaning on clips -------------------------------------
CLIP_RULES = {
    "mean": "the mean of the frames' ensemble probabilities",
    "trimmed": "the mean of the frames' ensemble probabilities without the highest and lowest quarter",
    "share": "the share of frames at or above the frame threshold (the faces' own \"leaning fake\" edge)",
    "pool": "a small logistic pool (weights >= 0) over the frames' mean logit, share past the frame threshold and "
            "90th-percentile logit",
}
TRIM = 0.25  # share cut from each end by the trimmed mean (4 of 16 frames each side)


def _trimmed_mean(values: np.ndarray, trim: float) -> float:
    v = np.sort(values)
    cut = int(math.floor(trim * len(v)))
    return float(v[cut : len(v) - cut].mean()) if len(v) > 2 * cut else float(v.mean())


def _pool_features(probabilities: np.ndarray, frame_threshold: float) -> np.ndarray:
    z = logit(np.clip(probabilities, 1e-6, 1 - 1e-6))
    return np.array([z.mean(), float(np.mean(probabilities >= frame_threshold)), np.quantile(z, 0.9)])


@dataclass
class ClipRule:
    """How a clip's frames become one score, and that score's five levels fitted on clips.

    rule: one of :data:`CLIP_RULES`; its input is the ensemble probability of each sampled frame's face (the
        most suspicious face of the frame, as the timeline shows it).
    frame_threshold: for ``share`` and ``pool``, the frame probability at or above which a frame counts.
    weights, intercept: the ``pool`` rule's logistic weights (over :func:`_pool_features`).
    levels: the five levels on the clip score, fitted on validation clips; ``levels.meaning`` is what each level
        meant there: the share of fake clips at it (every fake family against the real clips at even odds), and
        ``faces`` counts clips. None: the score has no levels (the clip then takes the faces' levels).
    """

    rule: str
    frame_threshold: float = 0.5
    trim: float = TRIM
    weights: list[float] | None = None
    intercept: float = 0.0
    levels: EvidenceLevels | None = None
    method: str = ""

    def score(self, probabilities) -> float:
        p = np.asarray([q for q in probabilities if q is not None and math.isfinite(q)], dtype=np.float64)
        if not p.size:
            raise ValueError("no frame scores to make a clip score from")
        if self.rule == "mean":
            return float(p.mean())
        if self.rule == "trimmed":
            return _trimmed_mean(p, self.trim)
        if self.rule == "share":
            return float(np.mean(p >= self.frame_threshold))
        if self.rule == "pool":
            return float(expit(self.intercept + _pool_features(p, self.frame_threshold) @ np.asarray(self.weights)))
        raise ValueError(f"unknown clip rule {self.rule!r}; choose from {', '.join(CLIP_RULES)}")

    def level(self, score: float | None) -> str | None:
        return None if self.levels is None else self.levels.level(score)

    @property
    def meanings(self) -> dict[str, dict] | None:
        return None if self.levels is None else self.levels.meaning

    @classmethod
    def fit_pool(cls, per_clip: list[np.ndarray], labels: np.ndarray, frame_threshold: float) -> "ClipRule":
        x = np.stack([_pool_features(np.asarray(p), frame_threshold) for p in per_clip])
        weights, intercept = fit_nonnegative_logistic(x, np.asarray(labels), c=1.0)
        return cls("pool", frame_threshold=frame_threshold, weights=[float(w) for w in weights], intercept=intercept)

    def to_dict(self) -> dict[str, Any]:
        out = {"rule": self.rule, "frame_threshold": float(self.frame_threshold), "trim": float(self.trim), "method": self.method}
        if self.weights is not None:
            out.update(weights=[float(w) for w in self.weights], intercept=float(self.intercept))
        if self.levels is not None:
            out["levels"] = self.levels.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClipRule":
        rule = str(data["rule"])
        if rule not in CLIP_RULES:
            raise ValueError(f"unknown clip rule {rule!r}")
        return cls(rule, frame_threshold=float(data.get("frame_threshold", 0.5)), trim=float(data.get("trim", TRIM)),
                   weights=[float(w) for w in data["weights"]] if data.get("weights") is not None else None,
                   intercept=float(data.get("intercept", 0.0)),
                   levels=EvidenceLevels.from_dict(data["levels"]) if data.get("levels") else None, method=str(data.get("method", "")))


def fit_clip_rule(rule: str, per_clip: list[np.ndarray], labels: np.ndarray, sources: np.ndarray, families: np.ndarray,
                  frame_threshold: float = 0.5) -> ClipRule:
    """A clip rule and its levels fitted on clips: ``per_clip`` holds each clip's frame probabilities (its
    frames' ensemble probabilities), ``sources`` each clip's source (reals are guarded per source) and
    ``families`` each clip's fake family. The levels are :func:`fit_evidence_levels` on clip scores with no
    corroboration (every frame has already had its detectors' say): "likely fake" calls at most 5 % of every
    real source's clips fake, "likely real" misses at most 10 % of every family's fake clips, the leans are right
    at least 75 % of the time; each level's meaning is the share of fake clips at it, each family against all
    real clips at even odds."""
    labels = np.asarray(labels)
    clip_rule = (ClipRule.fit_pool(per_clip, labels, frame_threshold) if rule == "pool"
                 else ClipRule(rule, frame_threshold=frame_threshold))
    scores = np.array([clip_rule.score(p) for p in per_clip])
    reals = {s: scores[(labels == 0) & (sources == s)] for s in sorted(set(sources[labels == 0].tolist()))}
    fakes = {f: scores[(labels == 1) & (families == f)] for f in sorted(set(families[labels == 1].tolist()))}
    sets = {family: (scores[labels == 0], fake) for family, fake in fakes.items()}
    clip_rule.levels = fit_evidence_levels(reals, fakes, sets)
    clip_rule.levels.method = clip_rule.levels.method.replace("validation faces", "validation clips").replace(
        "fake family's", "fake family's clips")
    clip_rule.method = f"clip score: {CLIP_RULES[rule]}" + (f" (frame threshold {frame_threshold:.3f})" if rule in ("share", "pool") else "")
    return clip_rule
