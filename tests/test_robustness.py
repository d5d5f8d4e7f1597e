"""The robustness probe's perturbations and its flip flags (with stand-in detectors)."""
import numpy as np

from detectors.pipeline import Analyzer
from detectors.robustness import PERTURBATIONS, half_size, jpeg_75, probe


class BrightnessDetector:
    """P(fake) from mean brightness: a stand-in that a resize barely moves and JPEG barely moves."""

    name = "bright"

    def logits(self, crops):
        return np.array([(c.mean() / 255.0 - 0.5) * 8 for c in crops])

    def verdict(self, p):
        return "fake" if p >= 0.5 else "real"


class SizeDetector(BrightnessDetector):
    """Says fake for pictures whose face crop came from a big face: flips when the picture is halved."""

    name = "size"
    big = True  # set by the test before each analysis

    def logits(self, crops):
        return np.array([3.0 if self.big else -3.0 for _ in crops])


def test_perturbations_keep_the_picture_recognisable(astronaut):
    assert jpeg_75(astronaut).shape == astronaut.shape
    assert np.abs(jpeg_75(astronaut).astype(int) - astronaut).mean() < 6
    assert half_size(astronaut).shape == (256, 256, 3)
    assert set(PERTURBATIONS) == {"JPEG quality 75", "0.5x resize"}


def test_probe_flags_exactly_the_verdicts_that_change(astronaut, cropper):
    size = SizeDetector()
    analyzer = Analyzer([BrightnessDetector(), size], cropper)
    original_analyze = analyzer.analyze_image

    def analyze(image, whole_image_if_no_face=False):
        size.big = image.shape[0] > 300
        return original_analyze(image, whole_image_if_no_face)

    analyzer.analyze_image = analyze
    rows = {(r.perturbation, r.scorer): r for r in probe(analyzer, astronaut)}
    assert len(rows) == 2 * 3
    assert rows[("0.5x resize", "size")].flipped and rows[("0.5x resize", "size")].perturbed_verdict == "real"
    assert not rows[("JPEG quality 75", "size")].flipped
    assert not rows[("JPEG quality 75", "bright")].flipped and not rows[("0.5x resize", "bright")].flipped
    assert rows[("0.5x resize", "size")].to_dict()["flipped"] is True
