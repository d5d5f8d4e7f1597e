"""The robustness probe's perturbations and its flip flags (with stand-in detectors); its "before" is what
Analyse scored (one decode path, shipped detectors)."""
import numpy as np
from PIL import Image

from detectors.media import Picture
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
    jpeg = jpeg_75(astronaut)
    assert jpeg.is_jpeg and jpeg.decoded()[0].shape == astronaut.shape  # decoded as an uploaded JPEG would be
    assert np.abs(jpeg.decoded()[0].astype(int) - astronaut).mean() < 6
    assert half_size(astronaut).decoded()[0].shape == (256, 256, 3)
    assert set(PERTURBATIONS) == {"JPEG quality 75", "0.5x resize"}


def test_probe_flags_exactly_the_verdicts_that_change(astronaut, cropper):
    size = SizeDetector()
    analyzer = Analyzer([BrightnessDetector(), size], cropper)
    original_analyze = analyzer.analyze_picture

    def analyze(picture, whole_image_if_no_face=False):
        size.big = max(picture.size) > 300
        return original_analyze(picture, whole_image_if_no_face)

    analyzer.analyze_picture = analyze
    rows = {(r.perturbation, r.scorer): r for r in probe(analyzer, astronaut)}
    assert len(rows) == 2 * 3
    assert rows[("0.5x resize", "size")].flipped and rows[("0.5x resize", "size")].perturbed_verdict == "real"
    assert not rows[("JPEG quality 75", "size")].flipped
    assert not rows[("JPEG quality 75", "bright")].flipped and not rows[("0.5x resize", "bright")].flipped
    assert rows[("0.5x resize", "size")].to_dict()["flipped"] is True


def test_pixels_and_a_lossless_file_of_them_are_analysed_alike(astronaut, cropper, tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    analyzer = Analyzer([BrightnessDetector()], cropper)
    from_file, from_pixels = analyzer.analyze_picture(Picture(tmp_path / "astronaut.png")), analyzer.analyze_image(astronaut)
    assert from_file.top.scores == from_pixels.top.scores and from_file.top.crop.region == from_pixels.top.crop.region


def test_the_probe_scores_before_exactly_what_analyse_scored_on_a_large_jpeg(astronaut, tmp_path):
    """A 2048 px JPEG is decoded reduced for Analyse; the probe's "before" must be that result, not a full decode's."""
    from detectors import service

    path = tmp_path / "large.jpg"
    Image.fromarray(astronaut).resize((2048, 2048), Image.Resampling.BICUBIC).save(path, quality=92)
    assert Picture(path).reduction_for(service.analyzer().cropper.max_detect_side) > 1  # Analyse decodes it reduced
    record = service.analyse_image(str(path))[-2]
    _, table = service.robustness_probe(str(path))
    names = {d.name: d.display_name for d in service.analyzer().detectors}
    assert len(record["scores"]) == len(names) > 0
    for perturbation in PERTURBATIONS:
        before = {row[1]: row[2] for row in table["value"] if row[0] == perturbation}
        for name, score in record["scores"].items():
            assert abs(before[names[name]] - score) <= 6e-4, (perturbation, name, before[names[name]], score)  # 3 vs 4 decimals
        assert abs(before["Ensemble"] - record["ensemble"]) <= 6e-4
