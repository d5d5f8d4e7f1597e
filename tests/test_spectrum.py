import numpy as np
import pytest

from detectors.spectrum import ANALYSIS_SIZE, ReferenceBand, load_reference_band, log_spectrum, radial_profile
from detectors.views import radial_profile_plot, spectrum_heatmap


def stripes(cycles_x: int, cycles_y: int = 0, size: int = ANALYSIS_SIZE) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    wave = 0.5 + 0.4 * np.sin(2 * np.pi * (cycles_x * xx + cycles_y * yy) / size)
    return np.repeat((wave * 255).astype(np.uint8)[:, :, None], 3, axis=2)


@pytest.mark.parametrize("cycles_x, cycles_y", [(32, 0), (0, 20), (24, 40)])
def test_periodic_pattern_peaks_where_expected(cycles_x, cycles_y):
    spectrum = log_spectrum(stripes(cycles_x, cycles_y))
    centre = ANALYSIS_SIZE // 2
    peak = np.unravel_index(np.argmax(spectrum), spectrum.shape)
    assert {tuple(peak)} <= {(centre + cycles_y, centre + cycles_x), (centre - cycles_y, centre - cycles_x)}


@pytest.mark.parametrize("cycles", [20, 48, 64])
def test_radial_profile_peaks_at_the_pattern_frequency(cycles):
    frequency, profile = radial_profile(log_spectrum(stripes(cycles)))
    assert frequency[0] == 0 and frequency[-1] == pytest.approx(0.5)
    lowest = 8  # the window's main lobe around DC lifts the first few rings
    peak = frequency[np.argmax(profile[lowest:]) + lowest]
    assert peak == pytest.approx(cycles / ANALYSIS_SIZE, abs=1.01 / ANALYSIS_SIZE)  # ring binning rounds


def test_window_removes_border_leakage():
    """A linear ramp wraps round with a jump; without the window that jump is a bright cross on the axes."""
    ramp = np.repeat(np.linspace(0, 255, ANALYSIS_SIZE, dtype=np.uint8)[None, :, None], ANALYSIS_SIZE, axis=0).repeat(3, axis=2)
    spectrum = log_spectrum(ramp)
    centre = ANALYSIS_SIZE // 2
    axis_high = spectrum[centre, centre + 100 :].mean()
    assert axis_high < np.log(1e-3)


def test_reference_band_quantiles_are_ordered_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(12)]
    band = ReferenceBand.from_crops(crops, source="noise")
    assert band.count == 12
    assert (band.low <= band.median).all() and (band.median <= band.high).all()
    band.save(tmp_path / "band.json")
    loaded = load_reference_band(tmp_path / "band.json")
    np.testing.assert_allclose(loaded.median, band.median, atol=1e-4)
    assert load_reference_band(tmp_path / "missing.json") is None


def test_shipped_reference_band_covers_the_analysis_frequencies():
    band = load_reference_band()
    assert band is not None, "assets/spectrum_reference.json is missing: run python -m detectors reference-band"
    assert len(band.frequency) == ANALYSIS_SIZE // 2 + 1
    assert band.count >= 500
    assert (band.high - band.low > 0).all()


def test_plots_carry_the_face_and_the_band():
    spectrum = log_spectrum(stripes(16))
    heatmap = spectrum_heatmap(spectrum)
    assert heatmap.data[0].z.shape == spectrum.shape
    band = ReferenceBand.from_crops([stripes(8), stripes(30)], source="test")
    profile = radial_profile_plot(spectrum, band)
    names = [trace.name for trace in profile.data]
    assert "this face" in names and any(name and "real faces" in name for name in names)
    assert len(radial_profile_plot(spectrum, None).data) == 1
