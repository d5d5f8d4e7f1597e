from pathlib import Path

import numpy as np
import pytest

from detectors.spectrum import (ANALYSIS_SIZE, BAND_SOURCES, FACE_SIDE_EDGES, UPPER_HALF, ReferenceBands, above_the_band,
                                face_side, load_reference_bands, log_spectrum, radial_profile, real_faces)
from detectors.training.reference_band import band_files
from detectors.views import radial_profile_plot, spectrum_heatmap

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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


def noise_faces(sides, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [("noise", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), side) for side in sides]


def test_reference_bands_are_ordered_round_trip_and_each_face_gets_the_band_of_its_size(tmp_path):
    bands = ReferenceBands.from_faces(noise_faces([100, 120, 200, 220, 300, 900]), built_from="noise", edges=(150, 250))
    assert [band.face_sides for band in bands.bands] == [(0, 150), (150, 250), (250, None)]
    assert [band.count for band in bands.bands] == [2, 2, 2] and bands.count == 6
    for band in bands.bands:
        assert (band.low <= band.median).all() and (band.median <= band.high).all()
    assert bands.for_face(149) is bands.bands[0] and bands.for_face(150) is bands.bands[1] and bands.for_face(5000) is bands.bands[2]
    bands.save(tmp_path / "bands.json")
    loaded = load_reference_bands(tmp_path / "bands.json")
    np.testing.assert_allclose(loaded.bands[1].high, bands.bands[1].high, atol=1e-4)
    assert loaded.bands[2].face_sides == (250, None) and loaded.bands[0].sources == {"noise": 2}
    assert load_reference_bands(tmp_path / "missing.json") is None
    with pytest.raises(ValueError, match="no real faces"):
        ReferenceBands.from_faces(noise_faces([100, 120]), built_from="noise", edges=(150,))


def test_shipped_reference_bands_cover_the_analysis_frequencies_and_name_their_sources():
    bands = load_reference_bands()
    assert bands is not None, "assets/spectrum_reference.json is missing: run python -m detectors reference-band"
    assert [band.face_sides for band in bands.bands] == list(zip([0, *FACE_SIDE_EDGES], [*FACE_SIDE_EDGES, None]))
    for band in bands.bands:
        assert len(band.frequency) == ANALYSIS_SIZE // 2 + 1
        assert band.count >= 300 and (band.high - band.low > 0).all()
        assert sum(n >= 50 for n in band.sources.values()) >= 2  # every band mixes sources
    built = {name for band in bands.bands for name in band.sources}
    assert built == set(BAND_SOURCES)


def test_plots_carry_the_face_and_the_band_with_its_size_and_sources():
    spectrum = log_spectrum(stripes(16))
    heatmap = spectrum_heatmap(spectrum)
    assert heatmap.data[0].z.shape == spectrum.shape
    bands = ReferenceBands.from_faces([("ffhq", stripes(8), 200), ("celeba", stripes(30), 210), ("celeba", stripes(9), 100)],
                                      built_from="test", edges=(150,))
    profile = radial_profile_plot(spectrum, bands.for_face(200))
    names = [trace.name for trace in profile.data]
    assert "this face" in names
    band_name = next(name for name in names if name and "real faces 5-95 %" in name)
    assert "face 150 px and up" in band_name and "FFHQ 1" in band_name and "CelebA 1" in band_name
    assert len(radial_profile_plot(spectrum, None).data) == 1


HELD_OUT_PER_SOURCE = 60  # faces: enough for a share, few enough for the test to take seconds
MOST_ABOVE = 0.10  # share of held-out real faces a source may have above the band


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("source", list(BAND_SOURCES))
def test_held_out_real_faces_of_every_source_are_not_above_their_band(source, cropper):
    """A real face drawn above the band reads as "sharper than real faces". Faces the band never saw (each source's
    test files; for the sharp 512 px Unsplash portraits too) must be above their band's 95 % edge over most of the
    upper half of the spectrum for at most 10 % of a source's faces."""
    bands = load_reference_bands()
    faces = list(real_faces(band_files(SHARED, source, "check")[:3 * HELD_OUT_PER_SOURCE], cropper, HELD_OUT_PER_SOURCE))
    assert len(faces) >= HELD_OUT_PER_SOURCE * 0.75, f"only {len(faces)} held-out faces of {source}"
    above = [crop.region[2] for crop in faces
             if above_the_band(radial_profile(log_spectrum(crop.image))[1], bands.for_face(face_side(crop)))]
    assert len(above) <= MOST_ABOVE * len(faces), f"{source}: {len(above)} of {len(faces)} above their band (face sides {above})"


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
def test_the_band_is_built_and_checked_on_files_apart():
    for source in BAND_SOURCES:
        built, checked = set(band_files(SHARED, source, "build")), set(band_files(SHARED, source, "check"))
        assert built and checked and not built & checked, source


def test_above_the_band_means_above_its_high_edge_over_most_of_the_upper_half():
    bands = ReferenceBands.from_faces(noise_faces([100] * 5), built_from="noise", edges=())
    band = bands.bands[0]
    upper = band.frequency >= UPPER_HALF
    lifted = band.high + 0.1
    assert above_the_band(lifted, band) and not above_the_band(band.median, band)
    half = np.where(upper & (np.cumsum(upper) <= upper.sum() // 2), lifted, band.median)  # lifted over less than half of it
    assert not above_the_band(half, band)
