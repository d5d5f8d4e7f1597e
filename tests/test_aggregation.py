"""Video aggregation rules: mean, and the 'confident' rule after the DFDC winner's."""
import numpy as np
import pytest

from detectors.pipeline import AGGREGATION_RULES, aggregate


def test_mean_is_the_mean():
    assert aggregate([0.1, 0.5, 0.9]) == pytest.approx(0.5)


def test_confident_fake_frames_decide_when_there_are_enough():
    frames = [0.95] * 7 + [0.3] * 9  # 7 of 16 > 40 % confidently fake
    assert aggregate(frames, "confident", 0.2, 0.8) == pytest.approx(0.95)
    assert aggregate(frames, "mean") == pytest.approx(np.mean(frames))


def test_too_few_confident_fakes_fall_back_to_the_mean():
    frames = [0.95] * 6 + [0.3] * 10  # 6 of 16 = 37.5 %
    assert aggregate(frames, "confident", 0.2, 0.8) == pytest.approx(np.mean(frames))


def test_confident_real_needs_nine_in_ten_frames():
    assert aggregate([0.05] * 19 + [0.6], "confident", 0.2, 0.8) == pytest.approx(0.05)
    frames = [0.05] * 17 + [0.6] * 3
    assert aggregate(frames, "confident", 0.2, 0.8) == pytest.approx(np.mean(frames))


def test_band_edges_come_from_the_caller():
    frames = [0.7] * 10
    assert aggregate(frames, "confident", 0.3, 0.65) == pytest.approx(0.7)
    assert aggregate([0.7] * 5 + [0.1] * 5, "confident", 0.3, 0.75) == pytest.approx(0.4)


def test_unknown_rule_and_empty_input_are_errors():
    with pytest.raises(ValueError, match="unknown aggregation rule"):
        aggregate([0.5], "median")
    with pytest.raises(ValueError, match="no frame scores"):
        aggregate([], "mean")
    assert set(AGGREGATION_RULES) == {"mean", "confident"}
