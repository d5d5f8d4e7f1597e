"""Clip verdicts fitted on clips: the clip rules' scores, their levels and measured meaning, the optional ``clip``
field of the ensemble rule, a clip's level in the pipeline and its record, and the clip table of ``evaluate``."""
from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.calibration import CLIP_RULES, LEVELS, ClipRule, EnsembleRule, fit_clip_rule, level_verdict
from detectors.registry import ASSETS, ENSEMBLE_FILE


def test_each_clip_rule_scores_the_frames_as_it_says():
    frames = [0.1, 0.2, 0.2, 0.3, 0.9, 0.95, 0.2, 0.1]
    assert ClipRule("mean").score(frames) == pytest.approx(np.mean(frames))
    # trimmed: the two lowest and two highest of eight frames go (one face the detectors misread moves nothing)
    assert ClipRule("trimmed").score(frames) == pytest.approx(np.mean([0.2, 0.2, 0.2, 0.3]))
    assert ClipRule("share", frame_threshold=0.5).score(frames) == pytest.approx(2 / 8)
    assert ClipRule("mean").score([0.4, None, float("nan")]) == pytest.approx(0.4)  # faceless frames do not count
    with pytest.raises(ValueError):
        ClipRule("mean").score([None])
    with pytest.raises(ValueError):
        ClipRule("median").score(frames)


def _clips(seed: int = 0, count: int = 40):
    """Clips of 16 frames: reals of two sources mostly low, fakes of two families mostly high, a few outlier frames."""
    rng = np.random.default_rng(seed)
    per_clip, labels, sources, families = [], [], [], []
    for k in range(count):
        label = k % 2
        centre = rng.uniform(0.5, 0.9) if label else rng.uniform(0.1, 0.55)
        frames = np.clip(rng.normal(centre, 0.1, 16), 0.001, 0.999)
        frames[rng.integers(16)] = rng.uniform()  # one frame the detectors misread
        per_clip.append(frames)
        labels.append(label)
        sources.append("lab" if k % 4 < 2 else "news")
        families.append("reenactment" if k % 4 == 1 else "unseen reenactment")
    return per_clip, np.array(labels), np.array(sources), np.array(families)


@pytest.mark.parametrize("rule", sorted(CLIP_RULES))
def test_clip_levels_are_fitted_on_clips_and_mean_the_share_of_fake_clips_at_them(rule):
    per_clip, labels, sources, families = _clips()
    fitted = fit_clip_rule(rule, per_clip, labels, sources, families, frame_threshold=0.6)
    levels = fitted.levels
    assert levels.likely_real <= levels.leaning_real <= levels.leaning_fake <= levels.likely_fake
    scores = np.array([fitted.score(p) for p in per_clip])
    said = np.array([fitted.level(s) for s in scores])
    for source in ("lab", "news"):  # "likely fake" on at most 5 % of every real source's clips
        assert np.mean(said[(labels == 0) & (sources == source)] == "likely fake") <= 0.05
    # the meaning counts clips, and its share of fakes is what was measured on them (each family against all reals)
    assert sum(levels.meaning[level]["faces"] for level in LEVELS) == 2 * (labels == 0).sum() + (labels == 1).sum()
    for level in LEVELS:
        at = said == level
        fake_rate = np.mean([np.mean(at[(labels == 1) & (families == f)]) for f in ("reenactment", "unseen reenactment")])
        real_rate = np.mean(at[labels == 0])
        expected = None if fake_rate + real_rate == 0 else round(fake_rate / (fake_rate + real_rate), 4)
        assert levels.meaning[level]["fake_share"] == pytest.approx(expected, abs=1e-4) if expected is not None else levels.meaning[level]["fake_share"] is None
    again = ClipRule.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert [again.level(again.score(p)) for p in per_clip] == said.tolist()


def test_the_shipped_ensemble_rule_loads_with_and_without_a_clip_rule():
    shipped = json.loads((ASSETS / ENSEMBLE_FILE).read_text())
    rule = EnsembleRule.from_dict(shipped)
    assert rule.levels is not None  # the optional field changes nothing for a rule fitted without it
    assert ("clip" in shipped) == (rule.clip is not None)
    per_clip, labels, sources, families = _clips()
    with_clip = {**shipped, "clip": {**fit_clip_rule("trimmed", per_clip, labels, sources, families).to_dict(),
                                     "validation": {"clips": len(labels)}}}
    again = EnsembleRule.from_dict(json.loads(json.dumps(with_clip)))
    assert again.clip.rule == "trimmed" and again.clip.levels is not None
    assert EnsembleRule.from_dict(again.to_dict()).clip.to_dict() == again.clip.to_dict()


def _analyzer(clip_rule: ClipRule | None):
    from tests.test_levels import _analyzer as face_analyzer

    analyzer, levels = face_analyzer()
    analyzer.ensemble.rule.clip = clip_rule
    return analyzer, levels


def _reports(analyzer, frames):
    from detectors.calibration import logit
    from detectors.faces import FaceCrop
    from detectors.pipeline import FaceResult, ImageReport

    reports = []
    for p in frames:
        face = FaceResult(crop=FaceCrop(np.zeros((4, 4, 3), np.uint8), (0, 0, 4), None), logits={"stub": float(logit(p))})
        analyzer._decide(face)
        reports.append(ImageReport([face]))
    return reports


def test_a_clip_with_a_clip_rule_gets_the_clip_level_and_its_meaning_in_the_record():
    from detectors.calibration import EvidenceLevels
    from detectors.media import VideoFrame

    meaning = {level: {"fake_share": share, "by_set": {"reenactment": share}, "faces": 7}
               for level, share in zip(LEVELS, (0.9, 0.7, 0.5, 0.3, 0.1))}
    clip_rule = ClipRule("trimmed", levels=EvidenceLevels(0.5, 0.3, 0.2, 0.1, meaning, "test clips", corroboration=0))
    analyzer, face_levels = _analyzer(clip_rule)
    frames = (0.35, 0.35, 0.4, 0.4, 0.4, 0.45, 0.45, 0.99)  # one misread frame; trimmed mean 0.41: leaning fake for clips
    reports = _reports(analyzer, frames)
    summary = analyzer.video_summary(reports, "mean")
    assert summary.ensemble == pytest.approx(0.4125) and summary.level == "leaning fake" and summary.verdict == level_verdict("leaning fake")
    without, _ = _analyzer(None)  # the faces' levels read the same frames as "uncertain"
    assert without.video_summary(_reports(without, frames), "mean").level == "uncertain"
    record = analyzer.video_record([VideoFrame(i, i / 10, None) for i in range(len(frames))], reports)
    assert record["level"] == "leaning fake" and record["clip_rule"]["rule"] == "trimmed"
    assert analyzer.level_meaning(record["level"], clip=True)["fake_share"] == 0.7  # the clips' meaning, not the faces'
    assert analyzer.level_meaning(record["level"])["fake_share"] == 0.8
    assert without.video_record([VideoFrame(i, i / 10, None) for i in range(len(frames))], _reports(without, frames))["clip_rule"] is None


def test_the_clip_headline_says_clips_and_shows_their_scale():
    from detectors import views

    meaning = {level: {"fake_share": share, "by_set": {"reenactment": share}, "faces": 4}
               for level, share in zip(LEVELS, (0.9, 0.7, 0.5, 0.3, 0.1))}
    html = views.verdict_cards_html([], {"verdict": "uncertain", "level": "leaning fake", "probability": 0.4, "agree": 1, "total": 4,
                                         "meanings": meaning, "set_names": {"reenactment": "talking heads"}, "unit": "clips",
                                         "score_name": "trimmed mean P(fake) of its frames"})
    assert "whole clip: Leaning fake" in html and "trimmed mean P(fake) of its frames 40%" in html
    assert "On validation clips" in html and "fake 70% of the time" in html and "talking heads 70%" in html
    assert "among validation clips at this level" in html and html.count('class="level-step') == 5


def test_evaluate_reports_each_clip_s_level_and_the_clips_auc_per_source():
    from detectors.evaluation import Scored, summarise
    from detectors.calibration import EvidenceLevels, logit

    class Ensemble:
        name = "ensemble"
        threshold = 0.5
        clip = ClipRule("trimmed", levels=EvidenceLevels(0.7, 0.6, 0.4, 0.3, {}, "test", corroboration=0))

        def verdict(self, p):
            return "fake" if p >= 0.7 else "real" if p < 0.3 else "uncertain"

        def level(self, p, votes=None):
            return "uncertain"

    scored = Scored(logits={"ensemble": []})
    clips = [(0, "talking", [0.1, 0.2, 0.2, 0.9]), (0, "talking", [0.2, 0.25, 0.3, 0.3]),
             (1, "float", [0.8, 0.9, 0.85, 0.1]), (1, "float", [0.5, 0.55, 0.5, 0.5])]
    for g, (label, source, frames) in enumerate(clips):
        scored.kinds.append("video")
        scored.file_labels.append(label)
        scored.logits["ensemble"] += [float(logit(p)) for p in frames]
        scored.labels += [label] * len(frames)
        scored.groups += [g] * len(frames)
        scored.sources += [source] * len(frames)
    result = summarise(scored, [Ensemble()])["scorers"]["ensemble"]["clips"]
    assert result["rule"] == "trimmed" and result["clips"] == 4 and result["auc"] == 1.0
    assert result["sources"]["talking"]["levels"]["likely real"] == 1.0  # trimmed means 0.2 and 0.275
    assert result["sources"]["float"]["levels"] == {**{level: 0.0 for level in LEVELS}, "likely fake": 0.5, "uncertain": 0.5}
    assert result["sources"]["float"]["auc"] == 1.0 and result["sources"]["float"]["clips"] == 2


def test_the_scan_record_of_a_clip_carries_the_clip_level_its_meaning_and_the_rule():
    """Through ``scan_many``'s record builder: a clip's record takes the clip rule's level and the clips' meaning,
    a picture's record keeps the faces' meaning."""
    from detectors.calibration import EvidenceLevels
    from detectors.faces import FaceCrop
    from detectors.media import VideoFrame
    from detectors.pipeline import _Prepared

    from pathlib import Path

    meaning = {level: {"fake_share": share, "by_set": {}, "faces": 3} for level, share in zip(LEVELS, (0.91, 0.72, 0.5, 0.28, 0.09))}
    analyzer, _ = _analyzer(ClipRule("mean", levels=EvidenceLevels(0.5, 0.3, 0.2, 0.1, meaning, "test", corroboration=0)))

    class Brightness:  # the logit of a crop is set by its brightness: 0.4 -> P(fake) ~ 0.4
        name = "stub"

        def logits(self, crops):
            return np.array([np.log(c.mean() / 255 / (1 - c.mean() / 255)) for c in crops])

        def verdict(self, p):
            return "uncertain"

    analyzer.detectors = [Brightness()]
    crop = lambda p: FaceCrop(np.full((8, 8, 3), round(255 * p), np.uint8), (0, 0, 8), None)
    clip = _Prepared(path=Path("clip.mp4"), kind="video", units=[[crop(0.4)], [crop(0.42)]],
                     frames=[VideoFrame(0, 0.0, None), VideoFrame(1, 0.5, None)])
    picture = _Prepared(path=Path("face.png"), kind="image", units=[[crop(0.4)]])
    clip_record, picture_record = list(analyzer._records([clip, picture], "mean"))
    assert clip_record["level"] == "leaning fake" and clip_record["clip_rule"]["rule"] == "mean"
    assert clip_record["level_meaning"]["fake_share"] == 0.72  # the clips' meaning
    assert picture_record["level"] == "uncertain" and picture_record["level_meaning"]["fake_share"] == 0.5  # the faces'
