"""Evidence levels: five levels on the ensemble's probability, each with its measured meaning; the members' pooled
threshold rule; the clip rule; the level carried in records and shown in the page."""
from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.calibration import (LEVELS, SOURCE_SLACK, EnsembleRule, EvidenceLevels, clip_level, fit_ensemble, fit_evidence_levels,
                                   fit_guarded_thresholds, level_verdict)


def _validation(seed: int = 0):
    """Real sources and fake families as a held-out validation would hold them: one odd, high-scoring real
    source, an easy family and a hard one (scores in [0, 1])."""
    rng = np.random.default_rng(seed)
    reals = {"soft": rng.beta(2, 8, 400), "sharp": rng.beta(3, 6, 300), "odd": rng.beta(5, 4, 60)}
    fakes = {"easy": rng.beta(8, 2, 300), "hard": rng.beta(4, 4, 300)}
    sets = {"easy": (np.concatenate([reals["soft"], reals["sharp"]]), fakes["easy"]),
            "hard": (np.concatenate([reals["sharp"], reals["odd"]]), fakes["hard"])}
    return reals, fakes, sets


def test_levels_are_ordered_and_the_likely_levels_keep_their_guards():
    reals, fakes, sets = _validation()
    levels = fit_evidence_levels(reals, fakes, sets)
    assert levels.likely_real <= levels.leaning_real <= levels.leaning_fake <= levels.likely_fake
    for name, scores in reals.items():  # "likely fake" on at most 5 % of every real source, the odd one included
        assert np.mean([levels.level(p) == "likely fake" for p in scores]) <= 0.05
    for name, scores in fakes.items():  # "likely real" on at most 10 % of every fake family
        assert np.mean([levels.level(p) == "likely real" for p in scores]) <= 0.10


def test_each_levels_meaning_is_what_was_measured_at_it():
    reals, fakes, sets = _validation()
    levels = fit_evidence_levels(reals, fakes, sets)
    total = sum(len(r) + len(f) for r, f in sets.values())
    assert sum(levels.meaning[level]["faces"] for level in LEVELS) == total
    for level in LEVELS:  # recompute the even-odds share of fakes from the raw scores
        fake = sum(np.mean([levels.level(p) == level for p in f]) for _, f in sets.values())
        real = sum(np.mean([levels.level(p) == level for p in r]) for r, _ in sets.values())
        expected = fake / (fake + real) if fake + real else None
        got = levels.meaning[level]["fake_share"]
        assert (got is None) == (expected is None) and (got is None or abs(got - expected) < 1e-3)
    # the leaning levels were right at least LEAN_PRECISION of the time; the likely levels more so
    assert levels.meaning["leaning fake"]["fake_share"] >= 0.75
    assert levels.meaning["leaning real"]["fake_share"] <= 0.25
    assert levels.meaning["likely fake"]["fake_share"] > levels.meaning["leaning fake"]["fake_share"]
    assert levels.meaning["likely real"]["fake_share"] < levels.meaning["leaning real"]["fake_share"]
    assert set(levels.meaning["uncertain"]["by_set"]) == {"easy", "hard"}


def test_scores_across_the_range_get_levels_in_order_and_only_likely_levels_are_verdicts():
    levels = EvidenceLevels(0.9, 0.7, 0.4, 0.2, {}, "test")
    ps = np.linspace(0, 1, 101)
    got = [levels.level(float(p)) for p in ps]
    rank = {level: i for i, level in enumerate(reversed(LEVELS))}  # likely real = 0 ... likely fake = 4
    assert all(rank[a] <= rank[b] for a, b in zip(got, got[1:]))  # never less fake as the probability rises
    assert set(got) == set(LEVELS)
    assert levels.level(0.9) == "likely fake" and levels.level(0.8999) == "leaning fake"
    assert levels.level(0.2) == "leaning real" and levels.level(0.1999) == "likely real"
    assert levels.level(0.5) == "uncertain" and levels.level(None) is None and levels.level(math.nan) is None
    assert [level_verdict(level) for level in LEVELS] == ["fake", "uncertain", "uncertain", "uncertain", "real"]


def test_an_86_percent_face_never_reads_as_a_bare_uncertain():
    """The case from the issue: the ensemble gives 0.86 where the "likely fake" edge is higher; the level says
    which way the evidence leans."""
    reals, fakes, sets = _validation(3)
    levels = fit_evidence_levels(reals, fakes, sets)
    p = 0.5 * (levels.leaning_fake + levels.likely_fake)
    assert levels.level(p) == "leaning fake"


def test_likely_fake_needs_two_detectors_saying_fake_on_their_own():
    levels = EvidenceLevels(0.9, 0.7, 0.4, 0.2, {}, "test", corroboration=2)
    assert levels.level(0.95, fake_votes=2) == "likely fake"
    assert levels.level(0.95, fake_votes=1) == "leaning fake"  # one step down, never to "uncertain"
    assert levels.level(0.95) == "likely fake"  # no votes given: the probability alone
    assert levels.level(0.1, fake_votes=0) == "likely real"  # "likely real" needs no corroboration
    assert EvidenceLevels.from_dict(levels.to_dict()).corroboration == 2


def test_the_clip_rule_needs_half_the_frames_on_its_side():
    assert clip_level("likely fake", ["likely fake", "leaning fake", "uncertain", "likely real"]) == "likely fake"
    assert clip_level("likely fake", ["likely fake", "uncertain", "uncertain", "uncertain"]) == "leaning fake"
    assert clip_level("leaning fake", ["leaning fake", "likely real", "likely real"]) == "uncertain"
    assert clip_level("likely real", ["likely real", "leaning real", None, "uncertain"]) == "likely real"  # faceless frames do not vote
    assert clip_level("leaning real", ["uncertain", "uncertain", "leaning real"]) == "uncertain"
    assert clip_level("uncertain", ["likely fake"] * 3) == "uncertain"
    assert clip_level(None, []) is None


def test_the_pooled_member_rule_lets_a_confident_member_speak_where_one_source_freezes_the_worst_rule():
    reals, fakes, _ = _validation()
    worst = fit_guarded_thresholds(reals, fakes, rule="worst")
    pooled = fit_guarded_thresholds(reals, fakes, rule="pooled")
    called = lambda c: np.mean([p >= c.uncertain_high for p in fakes["easy"]])
    assert called(pooled) > called(worst)
    for name, scores in reals.items():  # every source still guarded, at SOURCE_SLACK times the pooled share
        assert np.mean(scores >= pooled.uncertain_high) <= SOURCE_SLACK * 0.05
    pooled_alarms = np.mean([np.mean(s >= pooled.uncertain_high) for s in reals.values()])
    assert pooled_alarms <= 0.05
    with pytest.raises(ValueError):
        fit_guarded_thresholds(reals, fakes, rule="median")


def test_the_ensemble_rule_keeps_its_levels_through_json():
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1], 200)
    logits = np.column_stack([rng.normal(0, 1, 400) + 1.5 * labels, rng.normal(0, 1, 400) + 0.5 * labels])
    reals = {"a": np.arange(0, 100), "b": np.arange(100, 200)}
    fakes = {"f": np.arange(200, 400)}
    rule = fit_ensemble(["x", "y"], logits, labels, groups=(reals, fakes), sets={"all": np.arange(400)})
    assert rule.levels is not None
    again = EnsembleRule.from_dict(rule.to_dict())
    assert again.levels.to_dict() == rule.levels.to_dict()
    p = rule.probabilities(logits)
    assert [again.levels.level(float(v)) for v in p] == [rule.levels.level(float(v)) for v in p]
    old = {k: v for k, v in again.to_dict().items() if k != "levels"}  # a rule fitted before levels existed
    assert EnsembleRule.from_dict(old).levels is None


# -- through the pipeline: faces, pictures, clips and their records ------------------------------------------
class _Stub:
    """A detector whose logit is set per face by the test (the pipeline reads ``name`` and ``verdict``)."""

    name = "stub"

    def verdict(self, probability: float) -> str:
        return "fake" if probability >= 0.8 else "real" if probability < 0.2 else "uncertain"


def _analyzer():
    from detectors.calibration import Calibration
    from detectors.pipeline import Analyzer
    from detectors.registry import EnsembleScorer

    meaning = {level: {"fake_share": share, "by_set": {"gan": share}, "faces": 10}
               for level, share in zip(LEVELS, (0.95, 0.8, 0.5, 0.2, 0.05))}
    levels = EvidenceLevels(0.9, 0.7, 0.4, 0.2, meaning, "test", corroboration=1)  # one detector: its own "fake" suffices
    rule = EnsembleRule(["stub"], [1.0], 0.0, Calibration(0.9, 0.2, 0.9, "test"), [0.0], levels)
    return Analyzer([_Stub()], cropper=object(), ensemble=EnsembleScorer(rule, [])), levels


def _face(p: float):
    from detectors.calibration import logit

    from detectors.pipeline import FaceResult

    return FaceResult(crop=None, logits={"stub": float(logit(p))})


def test_every_face_gets_the_level_of_its_probability_and_the_verdict_of_its_level():
    analyzer, levels = _analyzer()
    for p in np.linspace(0.01, 0.99, 50):
        face = _face(float(p))
        analyzer._decide(face)
        assert face.ensemble == pytest.approx(p)
        assert face.level == levels.level(face.ensemble) and face.verdict == level_verdict(face.level)
    assert analyzer.level_meaning("leaning fake")["fake_share"] == 0.8 and analyzer.level_meaning(None) is None


@pytest.mark.parametrize("frames, expected", [
    ((0.95, 0.95, 0.95, 0.95), "likely fake"),          # every frame likely fake
    ((0.99, 0.99, 0.99, 0.5, 0.5), "leaning fake"),      # mean 0.79; 3 of 5 frames on the fake side
    ((0.99, 0.99, 0.99, 0.99, 0.5, 0.5, 0.5, 0.5, 0.5), "uncertain"),  # mean 0.72 leans fake; 4 of 9 frames do
    ((0.99, 0.5, 0.5, 0.5), "uncertain"),               # mean 0.62
    ((0.01, 0.01, 0.01, 0.5), "likely real"),           # mean 0.13; 3 of 4 frames on the real side
    ((0.05, 0.1, 0.15, 0.5), "leaning real"),           # mean 0.2 (the likely edge is exclusive)
    ((0.05, 0.05, 0.5, 0.5, 0.5, 0.5), "uncertain"),    # mean 0.35 leans real; only 2 of 6 frames do
])
def test_a_clip_gets_its_level_from_its_mean_probability_and_its_frames(frames, expected):
    from detectors.pipeline import ImageReport

    analyzer, levels = _analyzer()
    reports = []
    for p in frames:
        face = _face(p)
        analyzer._decide(face)
        reports.append(ImageReport([face]))
    summary = analyzer.video_summary(reports, "mean")
    mean = float(np.mean(frames))
    assert summary.ensemble == pytest.approx(mean, abs=1e-6)
    assert summary.level == clip_level(levels.level(mean), [r.level for r in reports])
    assert summary.level == expected and summary.verdict == level_verdict(expected)
